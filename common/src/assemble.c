/* Building the served model file from the anchor and expert files. */
#include "flexo/assemble.h"

#include <stdlib.h>
#include <string.h>

#include "flexo/expert.h"
#include "flexo/modelfile.h"
#include "flexo/routerpub.h"

fx_err fx_assemble(const char *anchor_path, const char *router_pub_path,
                   const char *const *expert_paths, int n, int top_k,
                   const char *out_path, uint8_t digest[FX_BLAKE2B_BYTES],
                   fx_diag *diag)
{
	fx_model anchor = {0}, merged = {0};
	fx_routerpub rp = {0};
	fx_expert *experts = NULL;
	const fx_expert **list = NULL;
	uint8_t anchor_digest[FX_BLAKE2B_BYTES];
	char hex[2 * FX_BLAKE2B_BYTES + 1], *names = NULL;
	size_t names_len = 1;
	fx_st_meta meta[2];
	fx_err err;

	if (n < 0 || n + 1 > FX_MAX_EXPERTS)
		return fx_diag_set(diag, FX_ETOOBIG,
		                   "%d experts; at most %d fit beside the public "
		                   "one",
		                   n, FX_MAX_EXPERTS - 1);
	if (top_k < 0 || top_k > n + 1)
		return fx_diag_set(diag, FX_EINVAL,
		                   "top-k %d is not in 1..%d (the experts)", top_k,
		                   n + 1);
	if (top_k == 0)
		top_k = n + 1 < 4 ? n + 1 : 4;
	experts = calloc((size_t)n + 1, sizeof(*experts));
	list = calloc((size_t)n + 1, sizeof(*list));
	if (experts == NULL || list == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "expert table");
		goto out;
	}
	err = fx_modelfile_load(&anchor, anchor_path, false, diag);
	if (err == FX_OK && anchor.cfg.n_experts != 1)
		err = fx_diag_set(diag, FX_EINVAL, "%s is not a dense anchor",
		                  anchor_path);
	if (err == FX_OK)
		err = fx_blake2b_file(anchor_path, anchor_digest, NULL, diag);
	if (err == FX_OK)
		err = fx_routerpub_load(&rp, router_pub_path, anchor.cfg.n_layers,
		                        anchor.cfg.d_model, diag);
	if (err != FX_OK)
		goto out;
	fx_hex(hex, anchor_digest, sizeof(anchor_digest));
	for (int i = 0; i < n; i++) {
		const char *named, *domain;
		err = fx_expert_load(&experts[i], expert_paths[i], diag);
		if (err != FX_OK)
			goto out;
		named = fx_expert_meta(&experts[i], "anchor_digest");
		if (named == NULL || strcmp(named, hex) != 0) {
			err = fx_diag_set(diag, FX_EMISMATCH,
			                  "expert %s was trained from anchor "
			                  "%.16s..., not from %s (%.16s...)",
			                  expert_paths[i],
			                  named ? named : "(unnamed)", anchor_path,
			                  hex);
			goto out;
		}
		domain = fx_expert_meta(&experts[i], "domain");
		names_len += strlen(domain ? domain : "?") + 1;
		list[i] = &experts[i];
	}
	names = calloc(names_len, 1);
	if (names == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "expert names");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		const char *domain = fx_expert_meta(&experts[i], "domain");
		if (i > 0)
			strcat(names, ",");
		strcat(names, domain ? domain : "?");
	}
	err = fx_moe_build(&merged, &anchor, rp.rows, list, n, top_k, false,
	                   diag);
	if (err != FX_OK)
		goto out;
	meta[0].key = "flexo.anchor_digest";
	meta[0].value = hex;
	meta[1].key = "flexo.experts";
	meta[1].value = names;
	err = fx_modelfile_save(&merged, out_path, meta, 2, diag);
	if (err == FX_OK && digest != NULL)
		err = fx_blake2b_file(out_path, digest, NULL, diag);
out:
	for (int i = 0; experts != NULL && i < n; i++)
		fx_expert_release(&experts[i]);
	free(experts);
	free(list);
	free(names);
	fx_routerpub_release(&rp);
	fx_model_release(&anchor);
	fx_model_release(&merged);
	return err;
}
