/* Test tool: signs a contribution manifest (contrib.h) for any payload
 * file, so the transport tests can move random bytes of chosen sizes under
 * a real signature without training an expert. Router rows are one row of
 * four values. Usage: fx_mkcontrib KEY PAYLOAD SEQUENCE OUT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flexo/contrib.h"
#include "flexo/fsutil.h"

int main(int argc, char **argv)
{
	static const float router[4] = {0.5f, -0.25f, 0.125f, 1.0f};
	uint8_t release_digest[FX_BLAKE2B_BYTES], *env = NULL;
	size_t len = 0;
	fx_contrib_params p;
	fx_keypair key;
	fx_diag d = {{0}};
	int rc = 1;

	if (argc != 5) {
		fprintf(stderr,
		        "usage: fx_mkcontrib KEY PAYLOAD SEQUENCE OUT\n");
		return 2;
	}
	memset(release_digest, 7, sizeof(release_digest));
	memset(&p, 0, sizeof(p));
	p.consortium = "testnet";
	p.release_digest = release_digest;
	p.release_version = 1;
	p.domain = "code";
	p.sequence = strtoull(argv[3], NULL, 10);
	p.payload_path = argv[2];
	p.layers = 1;
	p.dim = 4;
	p.router = router;
	p.created = (int64_t)time(NULL);
	fx_keypair_init(&key);
	if (fx_seckey_load(&key, argv[1], NULL, 0, &d) != FX_OK ||
	    fx_contrib_create(&p, &key, &env, &len, &d) != FX_OK ||
	    fx_write_file_atomic(argv[4], env, len, 0644, &d) != FX_OK) {
		fprintf(stderr, "fx_mkcontrib: %s\n", d.msg);
		goto out;
	}
	rc = 0;
out:
	fx_keypair_release(&key);
	free(env);
	return rc;
}
