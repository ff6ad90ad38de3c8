/* flexo-bench upload: a contribution end to end over loopback TCP — signed
 * manifest, chunked upload into a coordinator child process (staging file,
 * streamed BLAKE2b-256, checkpoints), log-less admission (signature +
 * digest) — against raw loopback TCP throughput measured in the same run,
 * and the coordinator's peak RSS (VmHWM) for a small and a large payload.
 * The coordinator runs via posix_spawn (nng must not live in a fork). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "flexo/client.h"
#include "flexo/contrib.h"
#include "flexo/fsutil.h"
#include "flexo/hash.h"
#include "flexo/keys.h"
#include "flexo/roster.h"
#include "flexo/wire.h"

extern char **environ;

#define LOOP_WRITE (1u << 20) /* loopback reference: 1 MiB writes */

static const char usage_text[] =
    "usage: flexo-bench upload [options]\n"
    "\n"
    "Uploads a signed contribution of --size bytes to a coordinator child\n"
    "process over loopback TCP (chunks, staging file, streamed BLAKE2b-256,\n"
    "signature + digest admission) and compares its throughput with raw\n"
    "loopback TCP (1 MiB writes) measured in the same run. Also measures\n"
    "one core's streaming BLAKE2b-256 rate (libsodium, upload-sized chunks)\n"
    "over --size bytes: the payload digest is one sequential hash, so\n"
    "'hash_bound_vs_loopback' is the best ratio any transport could reach.\n"
    "Reports the coordinator's peak RSS (VmHWM) for a --small and a --size\n"
    "payload. Last line: 'upload_vs_loopback: <ratio>'.\n"
    "\n"
    "options:\n"
    "  --size BYTES         large payload (default 1073741824)\n"
    "  --small BYTES        small payload for the RSS baseline (default "
    "10485760)\n"
    "  --coordinator PATH   flexo-coordinator binary (default: beside this\n"
    "                       binary's build directory)\n"
    "  --dir DIR            work directory (default: a fresh one in /tmp,\n"
    "                       removed afterwards)\n"
    "  --chunk BYTES        payload bytes per UploadChunk (default and\n"
    "                       most: 4M)\n"
    "  --checkpoint BYTES   the coordinator's checkpoint interval (default:\n"
    "                       serve's, 64M)\n"
    "  -h, --help           this text\n";

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------ loopback */

typedef struct sink {
	int lfd;
	uint64_t got;
} sink;

static void *sink_main(void *arg)
{
	sink *s = arg;
	char *buf = malloc(LOOP_WRITE);
	int fd = accept(s->lfd, NULL, NULL);
	ssize_t n;

	while (buf != NULL && fd >= 0 && (n = read(fd, buf, LOOP_WRITE)) > 0)
		s->got += (uint64_t)n;
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

/* Bytes per second of one loopback TCP stream carrying `total` bytes. */
static double loopback(uint64_t total)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	sink s = {-1, 0};
	pthread_t t;
	char *buf = calloc(1, LOOP_WRITE);
	int fd = -1;
	double t0, dt = -1;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (buf == NULL || (s.lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    bind(s.lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(s.lfd, 1) != 0 ||
	    getsockname(s.lfd, (struct sockaddr *)&a, &alen) != 0)
		goto out;
	pthread_create(&t, NULL, sink_main, &s);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		shutdown(s.lfd, SHUT_RDWR);
		pthread_join(t, NULL);
		goto out;
	}
	t0 = now();
	for (uint64_t sent = 0; sent < total;) {
		ssize_t w = write(fd, buf, LOOP_WRITE);
		if (w <= 0)
			break;
		sent += (uint64_t)w;
	}
	close(fd);
	fd = -1;
	pthread_join(t, NULL);
	dt = now() - t0;
out:
	if (fd >= 0)
		close(fd);
	if (s.lfd >= 0)
		close(s.lfd);
	free(buf);
	return dt > 0 && s.got >= total ? (double)s.got / dt : -1;
}

/* ------------------------------------------------------------ hash bound */

/* Bytes per second of one core's streaming BLAKE2b-256 (the coordinator's
 * payload digest) over `total` bytes, fed in upload-sized chunks from one
 * warm buffer: the rate the digest allows when nothing else competes. */
static double hash_rate(uint64_t total)
{
	size_t chunk = FX_WIRE_CHUNK_MAX;
	uint8_t *buf = malloc(chunk), out[FX_BLAKE2B_BYTES];
	fx_blake2b_ctx h;
	double t0, dt;

	if (buf == NULL)
		return -1;
	for (size_t i = 0; i < chunk; i++)
		buf[i] = (uint8_t)(i * 131u + (i >> 12));
	fx_blake2b_init(&h);
	t0 = now();
	for (uint64_t done = 0; done < total;) {
		size_t n =
		    total - done < chunk ? (size_t)(total - done) : chunk;
		fx_blake2b_update(&h, buf, n);
		done += n;
	}
	fx_blake2b_final(&h, out);
	dt = now() - t0;
	free(buf);
	sodium_memzero(out, sizeof(out));
	return dt > 0 ? (double)total / dt : -1;
}

/* ------------------------------------------------------------ setup */

/* A payload file of `size` bytes: a 4 MiB pseudo-random block repeated
 * (the digest and the transport do not care about the content). */
static fx_err make_payload(const char *path, uint64_t size, fx_diag *d)
{
	fx_atomic_file af;
	size_t block = 4u << 20;
	uint8_t *buf = malloc(block);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	fx_err err;

	if (buf == NULL)
		return fx_diag_set(d, FX_ENOMEM, "payload block");
	for (size_t i = 0; i < block; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
	if ((err = fx_atomic_open(&af, path, 0644, d)) != FX_OK)
		goto out;
	for (uint64_t done = 0; done < size && err == FX_OK;) {
		size_t n = size - done < block ? (size_t)(size - done) : block;
		err = fx_atomic_write(&af, buf, n, d);
		done += n;
	}
	if (err == FX_OK)
		err = fx_atomic_commit(&af, d);
	fx_atomic_abort(&af);
out:
	free(buf);
	return err;
}

static fx_err make_roster(const char *path, const fx_keypair *root,
                          const fx_keypair *member, fx_diag *d)
{
	fx_roster r;
	fx_err err;

	fx_roster_init(&r);
	snprintf(r.consortium, sizeof(r.consortium), "bench");
	r.version = 1;
	r.expires = (int64_t)time(NULL) + 86400;
	r.threshold = 1;
	if ((err = fx_roster_add(&r, "root", root->pk, FX_ROLE_ROOT, 0, d)) ==
	        FX_OK &&
	    (err = fx_roster_add(&r, "owner", member->pk, FX_ROLE_CONTRIBUTOR,
	                         0, d)) == FX_OK &&
	    (err = fx_roster_seal(&r, d)) == FX_OK &&
	    (err = fx_roster_sign(&r, root, d)) == FX_OK)
		err = fx_roster_save(&r, path, d);
	fx_roster_release(&r);
	return err;
}

static fx_err make_envelope(const char *payload, const fx_keypair *k,
                            uint8_t **env, size_t *len, fx_diag *d)
{
	static const float router[4] = {0.5f, -0.25f, 0.125f, 1.0f};
	uint8_t release_digest[FX_BLAKE2B_BYTES];
	fx_contrib_params p;

	memset(release_digest, 1, sizeof(release_digest));
	memset(&p, 0, sizeof(p));
	p.consortium = "bench";
	p.release_digest = release_digest;
	p.release_version = 1;
	p.domain = "bench";
	p.sequence = 1;
	p.payload_path = payload;
	p.layers = 1;
	p.dim = 4;
	p.router = router;
	p.created = (int64_t)time(NULL);
	return fx_contrib_create(&p, k, env, len, d);
}

/* ------------------------------------------------------------ coordinator */

/* VmHWM of pid in bytes, or -1. */
static long long vm_hwm(pid_t pid)
{
	char path[64], line[256];
	long long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

/* CPU seconds (user + system) pid has used, or -1. */
static double proc_cpu(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name (which may hold spaces): state is
	 * field 3, utime and stime fields 14 and 15. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1,
	           " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	           &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
	       (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

typedef struct run {
	double seconds;    /* submit start to verdict */
	double coord_cpu;  /* coordinator CPU seconds in that time */
	double client_cpu; /* this process's (the contributor's) */
	long long hwm;     /* coordinator VmHWM after the upload */
	int accepted;
} run;

/* Starts a coordinator, uploads one payload, reads its VmHWM, stops it. */
static fx_err one_run(const char *coord_bin, const char *dir, int port,
                      const char *checkpoint, size_t chunk, const char *payload,
                      const fx_keypair *owner, run *out, fx_diag *d)
{
	char url[64], listen[80], staging[FX_PATH_MAX + 1],
	    roster[FX_PATH_MAX + 1];
	char *args[20];
	uint8_t *env = NULL;
	size_t env_len = 0;
	fx_client_opts o;
	fx_client *c = NULL;
	fx_submit_result r;
	pid_t pid = -1;
	double t0, cpu0, ccpu0;
	int st, n = 0;
	fx_err err;

	memset(&r, 0, sizeof(r));
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	snprintf(listen, sizeof(listen), "%s", url);
	snprintf(staging, sizeof(staging), "%s/staging-%d", dir, port);
	snprintf(roster, sizeof(roster), "%s/roster.bin", dir);
	args[n++] = (char *)coord_bin;
	args[n++] = "--log-level";
	args[n++] = "warn";
	args[n++] = "serve";
	args[n++] = "--listen";
	args[n++] = listen;
	args[n++] = "--staging";
	args[n++] = staging;
	args[n++] = "--roster";
	args[n++] = roster;
	args[n++] = "--max-payload";
	args[n++] = "16G";
	args[n++] = "--quota";
	args[n++] = "16G";
	args[n++] = "--signature-only"; /* measures transport, not gates */
	if (checkpoint != NULL) {
		args[n++] = "--checkpoint";
		args[n++] = (char *)checkpoint;
	}
	args[n] = NULL;
	if ((err = make_envelope(payload, owner, &env, &env_len, d)) != FX_OK)
		return err;
	if (posix_spawn(&pid, coord_bin, NULL, NULL, args, environ) != 0) {
		free(env);
		return fx_diag_set(d, FX_EIO, "spawning %s: %s", coord_bin,
		                   strerror(errno));
	}
	fx_client_opts_init(&o);
	o.url = url;
	o.chunk = chunk;
	if ((err = fx_client_open(&c, &o, d)) != FX_OK ||
	    (err = fx_client_ping(c, d)) != FX_OK)
		goto out;
	cpu0 = proc_cpu(pid);
	ccpu0 = self_cpu();
	t0 = now();
	if ((err = fx_client_submit(c, env, env_len, payload, &r, d)) != FX_OK)
		goto out;
	out->seconds = now() - t0;
	out->client_cpu = self_cpu() - ccpu0;
	out->coord_cpu = proc_cpu(pid) - cpu0;
	out->accepted = r.decision == FLEXO__V1__DECISION__DECISION_ACCEPTED;
	out->hwm = vm_hwm(pid);
	if (!out->accepted)
		err = fx_diag_set(d, FX_EREJECTED, "upload rejected: %s: %s",
		                  r.gate, r.reason);
out:
	fx_client_close(c);
	fx_submit_result_release(&r);
	free(env);
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, &st, 0);
	}
	return err;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v = strtoull(s, &end, 10);
	int shift = 0;
	if (end == s)
		return -1;
	if (*end == 'K' || *end == 'M' || *end == 'G')
		shift = *end == 'K' ? 10 : *end == 'M' ? 20 : 30, end++;
	if (*end != '\0' || v == 0 || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int cmd_upload(int argc, char **argv, const fx_logger *log)
{
	static const struct option longopts[] = {
	    {"size", required_argument, 0, 's'},
	    {"small", required_argument, 0, 'm'},
	    {"coordinator", required_argument, 0, 'c'},
	    {"dir", required_argument, 0, 'd'},
	    {"checkpoint", required_argument, 0, 'k'},
	    {"chunk", required_argument, 0, 'u'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	uint64_t size = 1ull << 30, small = 10ull << 20;
	char coord_bin[FX_PATH_MAX + 1] = "", dir[FX_PATH_MAX + 1] = "";
	char path_small[FX_PATH_MAX + 1], path_big[FX_PATH_MAX + 1];
	char roster[FX_PATH_MAX + 1];
	const char *checkpoint = NULL;
	uint64_t chunk = FX_WIRE_CHUNK_MAX;
	fx_keypair root, owner;
	run rs = {0, 0, 0, 0, 0}, rb = {0, 0, 0, 0, 0};
	double lo, up, hr;
	int opt, own_dir = 0, rc = 1, port = 20000 + (int)(getpid() % 20000);
	fx_diag d = {{0}};

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
		case 'm':
			if (parse_size(optarg, opt == 's' ? &size : &small) !=
			    0) {
				fprintf(stderr, "upload: bad size '%s'\n",
				        optarg);
				return 2;
			}
			break;
		case 'c':
			snprintf(coord_bin, sizeof(coord_bin), "%s", optarg);
			break;
		case 'd':
			snprintf(dir, sizeof(dir), "%s", optarg);
			break;
		case 'k':
			checkpoint = optarg;
			break;
		case 'u':
			if (parse_size(optarg, &chunk) != 0 ||
			    chunk > FX_WIRE_CHUNK_MAX) {
				fprintf(stderr,
				        "upload: --chunk must be 1..%u bytes, "
				        "not '%s'\n",
				        FX_WIRE_CHUNK_MAX, optarg);
				return 2;
			}
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (coord_bin[0] == '\0') {
		/* build/bench/flexo-bench ->
		 * build/coordinator/flexo-coordinator */
		char self[FX_PATH_MAX + 1];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		char *slash;
		if (n <= 0)
			return 1;
		self[n] = '\0';
		if ((slash = strrchr(self, '/')) != NULL)
			*slash = '\0';
		snprintf(coord_bin, sizeof(coord_bin),
		         "%s/../coordinator/flexo-coordinator", self);
	}
	if (access(coord_bin, X_OK) != 0) {
		fprintf(stderr,
		        "upload: no coordinator binary at %s (--coordinator)\n",
		        coord_bin);
		return 1;
	}
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/fx-bench-upload-XXXXXX");
		if (mkdtemp(dir) == NULL)
			return 1;
		own_dir = 1;
	}
	fx_keypair_init(&root);
	fx_keypair_init(&owner);
	snprintf(path_small, sizeof(path_small), "%s/small.bin", dir);
	snprintf(path_big, sizeof(path_big), "%s/big.bin", dir);
	snprintf(roster, sizeof(roster), "%s/roster.bin", dir);
	fx_log(log, FX_INFO,
	       "preparing payloads (%" PRIu64 " and %" PRIu64 " bytes) in %s",
	       small, size, dir);
	if (fx_keypair_generate(&root, &d) != FX_OK ||
	    fx_keypair_generate(&owner, &d) != FX_OK ||
	    make_roster(roster, &root, &owner, &d) != FX_OK ||
	    make_payload(path_small, small, &d) != FX_OK ||
	    make_payload(path_big, size, &d) != FX_OK)
		goto fail;

	/* The client side as `submit` runs it. */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	lo = loopback(size);
	if (lo <= 0) {
		fx_diag_set(&d, FX_ENET, "loopback measurement failed");
		goto fail;
	}
	printf("loopback tcp (1 MiB writes): %.2f GB/s\n", lo / 1e9);
	hr = hash_rate(size);
	if (hr <= 0) {
		fx_diag_set(&d, FX_ENOMEM, "hash measurement failed");
		goto fail;
	}
	printf("blake2b-256 one core (%u KiB updates): %.2f GB/s\n",
	       FX_WIRE_CHUNK_MAX >> 10, hr / 1e9);
	fflush(stdout);
	if (one_run(coord_bin, dir, port, checkpoint, (size_t)chunk, path_small,
	            &owner, &rs, &d) != FX_OK)
		goto fail;
	printf("upload %" PRIu64 " bytes: %.3f s, %.2f GB/s, coordinator VmHWM "
	       "%.1f MiB\n",
	       small, rs.seconds, (double)small / rs.seconds / 1e9,
	       (double)rs.hwm / 1048576.0);
	fflush(stdout);
	if (one_run(coord_bin, dir, port + 1, checkpoint, (size_t)chunk,
	            path_big, &owner, &rb, &d) != FX_OK)
		goto fail;
	up = (double)size / rb.seconds;
	printf("upload %" PRIu64 " bytes: %.3f s, %.2f GB/s, coordinator VmHWM "
	       "%.1f MiB\n",
	       size, rb.seconds, up / 1e9, (double)rb.hwm / 1048576.0);
	/* CPU time is what other tenants of the cores inflate least. */
	printf("cpu seconds for it: coordinator %.2f, contributor %.2f\n",
	       rb.coord_cpu, rb.client_cpu);
	printf("rss_large_minus_small: %.1f MiB\n",
	       (double)(rb.hwm - rs.hwm) / 1048576.0);
	printf("upload_vs_hash: %.3f\n", up / hr);
	printf("hash_bound_vs_loopback: %.3f\n", hr / lo);
	printf("upload_vs_loopback: %.3f\n", up / lo);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "upload: %s\n", d.msg);
out:
	fx_keypair_release(&root);
	fx_keypair_release(&owner);
	if (own_dir) {
		/* Everything the runs left (payloads, roster, staging with its
		 * verdict files) lives in the directory this run made. */
		char cmd[FX_PATH_MAX + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "upload: could not remove %s\n", dir);
	}
	return rc;
}
