/* Assembly: anchor + public router rows + expert files -> the served
 * mixture-of-experts model file. A pure function of its inputs (the same
 * files give a byte-identical output), so an auditor holding the ledger's
 * blobs re-assembles the served model and compares digests. */
#ifndef FLEXO_ASSEMBLE_H
#define FLEXO_ASSEMBLE_H

#include <stdint.h>

#include "flexo/err.h"
#include "flexo/hash.h"

/* Merges: expert 0 is the anchor's FFN with router row r_pub (from
 * router_pub_path), expert i the i-th file, in the order given. Every expert
 * must name the anchor file's BLAKE2b-256 as its anchor_digest. top_k 0
 * means min(4, E). Writes out_path (temporary file + rename) with metadata
 * flexo.anchor_digest and flexo.experts (the experts' domain labels, comma
 * separated) and returns its BLAKE2b-256 in digest (may be NULL). */
fx_err fx_assemble(const char *anchor_path, const char *router_pub_path,
                   const char *const *expert_paths, int n, int top_k,
                   const char *out_path, uint8_t digest[FX_BLAKE2B_BYTES],
                   fx_diag *diag);

#endif
