/* `flexo-contributor status`: what this contributor has submitted and
 * withdrawn, and the verdicts, from the local record that `submit --state`
 * and `withdraw` keep (state/submissions), plus the release it trains on
 * and its sequence counter. Reads nothing from the network. */
#define _GNU_SOURCE /* memmem */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "flexo/fsutil.h"
#include "flexo/release.h"
#include "ledger_local.h"

static void usage(FILE *out)
{
	fputs("usage: flexo-contributor status --state DIR\n\n"
	      "Prints the anchor release this contributor verified, its "
	      "sequence counter,\nand every contribution it submitted with "
	      "the coordinator's verdict, gate\nand ledger entry, marking "
	      "those it withdrew (DIR/submissions, kept by\n'submit --state' "
	      "and 'withdraw').\n",
	      out);
}

int cmd_status(int argc, char **argv, const fx_logger *log)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *state = NULL;
	char path[4200], hex[2 * FX_BLAKE2B_BYTES + 1];
	uint8_t *buf = NULL, *seq = NULL, rdigest[FX_BLAKE2B_BYTES];
	size_t len = 0, seq_len = 0;
	uint64_t version = 0;
	int opt, have = 0, rc = 1, n = 0;
	fx_diag d = {{0}};
	fx_err err;

	(void)log;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 's') {
			state = optarg;
		} else if (opt == 'h') {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (state == NULL || optind != argc) {
		fprintf(stderr, "status: --state is required\n");
		usage(stderr);
		return 2;
	}
	if (fx_release_state_load(state, &have, &version, rdigest, &d) !=
	    FX_OK) {
		fprintf(stderr, "status: %s\n", d.msg);
		return 1;
	}
	if (have)
		printf("release:   v%" PRIu64 " (%s)\n", version,
		       fx_hex(hex, rdigest, FX_BLAKE2B_BYTES));
	else
		printf("release:   none verified yet (run 'fetch')\n");
	snprintf(path, sizeof(path), "%s/sequence", state);
	if (fx_read_file(path, 64, &seq, &seq_len, NULL) == FX_OK)
		printf("sequence:  %.*s", (int)seq_len, (const char *)seq);
	else
		printf("sequence:  0 (nothing signed yet)\n");
	snprintf(path, sizeof(path), "%s/%s", state, SUBMISSIONS_FILE);
	err = fx_read_file(path, SUBMISSIONS_MAX, &buf, &len, &d);
	if (err == FX_ENOTFOUND) {
		printf("submissions: none recorded\n");
		rc = 0;
		goto out;
	}
	if (err != FX_OK) {
		fprintf(stderr, "status: %s\n", d.msg);
		goto out;
	}
	printf("%-12s %-16s %-10s %-16s %s\n", "kind", "digest", "verdict",
	       "gate", "entry");
	/* One line per record: KIND HEX DECISION GATE INDEX. A contribution
	 * later withdrawn is shown as such. */
	for (size_t off = 0; off < len;) {
		char kind[16], dg[80], dec[16], gate[80], state_s[24];
		unsigned long long idx;
		const char *line = (const char *)buf + off;
		const char *nl = memchr(line, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - line) : len - off;
		char tmp[512];
		if (ll >= sizeof(tmp) ||
		    (memcpy(tmp, line, ll), tmp[ll] = '\0',
		     sscanf(tmp, "%15s %79s %15s %79s %llu", kind, dg, dec,
		            gate, &idx) != 5)) {
			fprintf(stderr, "status: %s: line %d is damaged\n",
			        path, n + 1);
			goto out;
		}
		snprintf(state_s, sizeof(state_s), "%s", dec);
		if (strcmp(kind, "contribution") == 0 &&
		    strcmp(dec, "accepted") == 0) {
			char needle[100];
			snprintf(needle, sizeof(needle), "withdrawal %s ", dg);
			if (memmem(buf, len, needle, strlen(needle)) != NULL)
				snprintf(state_s, sizeof(state_s),
				         "accepted, withdrawn");
		}
		printf("%-12s %.16s %-10s %-16s %llu\n", kind, dg, state_s,
		       gate, idx);
		n++;
		off += ll + 1;
	}
	rc = 0;
out:
	free(buf);
	free(seq);
	return rc;
}
