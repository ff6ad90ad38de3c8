/* `flexo-contributor train`: trains this owner's expert from the anchor on
 * local text (DESIGN §2, "Expert training") and writes the expert file —
 * exactly what would be sent: the expert's FFN, router rows and bias, and
 * training metadata. The text never leaves this machine. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "flexo/cli.h"
#include "flexo/corpus.h"
#include "flexo/embed.h"
#include "flexo/expert_train.h"
#include "flexo/hash.h"
#include "flexo/modelfile.h"
#include "flexo/routerpub.h"
#include "flexo/safetensors.h"

#define CMD "train"

static const char usage_text[] =
    "usage: flexo-contributor train --anchor FILE --router-pub FILE "
    "--data DIR\n"
    "                               --domain NAME --out FILE [options]\n"
    "\n"
    "Trains an expert from the anchor on the documents in DIR and writes the\n"
    "expert file (FFN, router rows and bias per layer, training metadata).\n"
    "\n"
    "  --anchor FILE      the verified anchor model file\n"
    "  --router-pub FILE  the public router rows shipped with the anchor\n"
    "  --data DIR         this owner's private text documents\n"
    "  --domain NAME      domain label recorded in the expert (1..64 chars)\n"
    "  --out FILE         expert file to write\n"
    "  --embedding FILE   use this embedding ([d] or [L, d] tensor named\n"
    "                     \"embedding\") instead of the anchor's embedder\n"
    "  --public DIR       public text mixed into the router's training\n"
    "  --public-mix R     rows of public text per batch (default 0; needs "
    "--public)\n"
    "  --mix-router-only  public rows train the router only, not the FFN\n"
    "  --router-lr-mult X learning-rate multiplier of the router row and bias\n"
    "                     (default 1)\n"
    "  --anchor-decay X   pull of the expert FFN towards the anchor's FFN per\n"
    "                     unit learning rate (default 0 = off)\n"
    "  --steps N          training steps (default 300)\n"
    "  --batch B          sequences per step (default 8)\n"
    "  --lr X             peak learning rate (default 1e-3)\n"
    "  --bias-init X      initial router bias, <= 0 (default 0)\n"
    "  --z-loss X         router z-loss coefficient (default 1e-3)\n"
    "  --heldout F        held-out fraction of documents (default 0.1)\n"
    "  --seed N           seed (default 1)\n"
    "  --threads N        OpenBLAS threads (default 2)\n";

typedef struct train_args {
	const char *anchor, *router_pub, *data, *domain, *out, *embedding,
	    *public_dir;
	int64_t steps, batch, mix, seed, threads;
	bool mix_router_only;
	double lr, bias_init, z_loss, heldout, router_lr_mult, anchor_decay;
} train_args;

static int parse(train_args *a, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"anchor", required_argument, 0, 'a'},
	    {"router-pub", required_argument, 0, 'r'},
	    {"data", required_argument, 0, 'd'},
	    {"domain", required_argument, 0, 'D'},
	    {"out", required_argument, 0, 'o'},
	    {"embedding", required_argument, 0, 'e'},
	    {"public", required_argument, 0, 'p'},
	    {"public-mix", required_argument, 0, 'm'},
	    {"mix-router-only", no_argument, 0, 'R'},
	    {"router-lr-mult", required_argument, 0, 'M'},
	    {"anchor-decay", required_argument, 0, 'A'},
	    {"steps", required_argument, 0, 's'},
	    {"batch", required_argument, 0, 'b'},
	    {"lr", required_argument, 0, 'l'},
	    {"bias-init", required_argument, 0, 'B'},
	    {"z-loss", required_argument, 0, 'z'},
	    {"heldout", required_argument, 0, 'H'},
	    {"seed", required_argument, 0, 'S'},
	    {"threads", required_argument, 0, 't'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	int opt;

	memset(a, 0, sizeof(*a));
	a->steps = 300;
	a->batch = 8;
	a->seed = 1;
	a->threads = 2;
	a->lr = 1e-3;
	a->z_loss = 1e-3;
	a->heldout = 0.1;
	a->router_lr_mult = 1.0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		int bad = 0;
		switch (opt) {
		case 'a': a->anchor = optarg; break;
		case 'r': a->router_pub = optarg; break;
		case 'd': a->data = optarg; break;
		case 'D': a->domain = optarg; break;
		case 'o': a->out = optarg; break;
		case 'e': a->embedding = optarg; break;
		case 'p': a->public_dir = optarg; break;
		case 'm': bad = fx_cli_int(CMD, "--public-mix", optarg, 0, 4095, &a->mix); break;
		case 'R': a->mix_router_only = true; break;
		case 'M': bad = fx_cli_num(CMD, "--router-lr-mult", optarg, 1e-3, 1000, &a->router_lr_mult); break;
		case 'A': bad = fx_cli_num(CMD, "--anchor-decay", optarg, 0, 1e6, &a->anchor_decay); break;
		case 's': bad = fx_cli_int(CMD, "--steps", optarg, 1, 10000000, &a->steps); break;
		case 'b': bad = fx_cli_int(CMD, "--batch", optarg, 1, 4096, &a->batch); break;
		case 'l': bad = fx_cli_num(CMD, "--lr", optarg, 0, 1, &a->lr); break;
		case 'B': bad = fx_cli_num(CMD, "--bias-init", optarg, -100, 0, &a->bias_init); break;
		case 'z': bad = fx_cli_num(CMD, "--z-loss", optarg, 0, 10, &a->z_loss); break;
		case 'H': bad = fx_cli_num(CMD, "--heldout", optarg, 0, 1, &a->heldout); break;
		case 'S': bad = fx_cli_int(CMD, "--seed", optarg, 0, INT64_MAX, &a->seed); break;
		case 't': bad = fx_cli_int(CMD, "--threads", optarg, 1, 64, &a->threads); break;
		case 'h': fputs(usage_text, stdout); return 1;
		default: fputs(usage_text, stderr); return -1;
		}
		if (bad)
			return -1;
	}
	if (!a->anchor || !a->router_pub || !a->data || !a->domain || !a->out ||
	    optind != argc) {
		fprintf(stderr, "train: --anchor, --router-pub, --data, --domain "
		                "and --out are required\n");
		fputs(usage_text, stderr);
		return -1;
	}
	if (strlen(a->domain) == 0 || strlen(a->domain) > 64) {
		fprintf(stderr, "train: --domain must be 1..64 characters\n");
		return -1;
	}
	if (a->mix > 0 && (a->public_dir == NULL || a->mix >= a->batch)) {
		fprintf(stderr, "train: --public-mix needs --public and must be "
		                "below --batch\n");
		return -1;
	}
	return 0;
}

/* An owner-supplied embedding: tensor "embedding", [d] (one vector for
 * every layer) or [L, d]; returned raw as (L, d). */
static fx_err load_embedding(const char *path, int L, int d, float *mean,
                             fx_diag *diag)
{
	fx_st_file *f = NULL;
	const fx_st_tensor *t;
	fx_err err;

	err = fx_st_open(path, &f, diag);
	if (err != FX_OK)
		return err;
	t = fx_st_find(f, "embedding");
	if (t == NULL) {
		err = fx_diag_set(diag, FX_EFORMAT,
		                  "%s has no tensor named \"embedding\"", path);
	} else if (t->ndim == 1) {
		int64_t shape[1] = {d};
		err = fx_st_read_f32(t, 1, shape, mean, diag);
		for (int l = 1; err == FX_OK && l < L; l++)
			memcpy(mean + (size_t)l * d, mean, (size_t)d * sizeof(float));
	} else {
		int64_t shape[2] = {L, d};
		err = fx_st_read_f32(t, 2, shape, mean, diag);
	}
	fx_st_close(f);
	return err;
}

static fx_err set_meta_num(fx_expert *x, const char *key, double v,
                           fx_diag *diag)
{
	char buf[48];
	snprintf(buf, sizeof(buf), "%.9g", v);
	return fx_expert_set_meta(x, key, buf, diag);
}

int cmd_train(int argc, char **argv, const fx_logger *log)
{
	train_args a;
	fx_model anchor = {0};
	fx_routerpub rp = {0};
	fx_corpus corpus = {0}, pub = {0};
	fx_expert expert = {0};
	fx_expert_train_opts o;
	fx_train_report rep;
	uint8_t digest[FX_BLAKE2B_BYTES];
	char hex[2 * FX_BLAKE2B_BYTES + 1];
	float *mean = NULL, *rows = NULL;
	fx_diag diag = {{0}};
	int L, d, status = 1, rc;
	fx_err err;

	rc = parse(&a, argc, argv);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	fx_model_set_threads((int)a.threads);
	err = fx_modelfile_load(&anchor, a.anchor, false, &diag);
	if (err == FX_OK && anchor.cfg.n_experts != 1)
		err = fx_diag_set(&diag, FX_EINVAL, "%s is not a dense anchor",
		                  a.anchor);
	if (err == FX_OK)
		err = fx_blake2b_file(a.anchor, digest, NULL, &diag);
	if (err != FX_OK)
		goto fail;
	L = anchor.cfg.n_layers;
	d = anchor.cfg.d_model;
	err = fx_routerpub_load(&rp, a.router_pub, L, d, &diag);
	if (err == FX_OK)
		err = fx_corpus_load(&corpus, a.data, a.heldout, &diag);
	if (err == FX_OK && a.public_dir != NULL)
		err = fx_corpus_load(&pub, a.public_dir, a.heldout, &diag);
	if (err != FX_OK)
		goto fail;
	fx_log(log, FX_INFO, "domain %s: %zu training documents, %zu held out",
	       a.domain, corpus.docs_train, corpus.docs_heldout);

	mean = malloc((size_t)L * d * sizeof(float));
	rows = malloc((size_t)L * d * sizeof(float));
	if (mean == NULL || rows == NULL) {
		err = fx_diag_set(&diag, FX_ENOMEM, "router rows");
		goto fail;
	}
	/* r_i: this domain's embedding, made exactly as r_pub was. */
	if (a.embedding != NULL)
		err = load_embedding(a.embedding, L, d, mean, &diag);
	else
		err = fx_embed_mean(&anchor, corpus.train, corpus.n_train,
		                    rp.windows, anchor.cfg.max_seq,
		                    (uint64_t)a.seed, rp.mode, mean, &diag);
	if (err == FX_OK)
		err = fx_embed_rows(mean, NULL, L, d, rp.norm, rows, &diag);
	if (err != FX_OK)
		goto fail;

	fx_expert_train_defaults(&o, &anchor.cfg);
	o.train.batch = (int)a.batch;
	o.train.steps = a.steps;
	o.train.adam.lr = (float)a.lr;
	o.train.adam.lr_min = (float)a.lr / 10;
	o.train.adam.warmup_steps = a.steps / 10;
	o.train.fwd.z_loss = (float)a.z_loss;
	o.train.seed = (uint64_t)a.seed;
	o.train.eval_tokens = 0;
	o.train.mix = a.mix ? &pub : NULL;
	o.train.mix_rows = (int)a.mix;
	o.train.mix_router_only = a.mix_router_only;
	o.train.adam.router_lr_mult = (float)a.router_lr_mult;
	o.train.adam.expert_anchor_decay = (float)a.anchor_decay;
	o.bias_init = (float)a.bias_init;
	err = fx_expert_train(&anchor, rp.rows, rows, &corpus, &o, log, &expert,
	                      &rep, &diag);
	if (err != FX_OK)
		goto fail;

	err = fx_expert_set_meta(&expert, "anchor_digest",
	                         fx_hex(hex, digest, sizeof(digest)), &diag);
	if (err == FX_OK)
		err = fx_expert_set_meta(&expert, "domain", a.domain, &diag);
	if (err == FX_OK)
		err = fx_expert_set_meta(&expert, "embed.source",
		                         a.embedding ? "file" : "anchor", &diag);
	if (err == FX_OK)
		err = set_meta_num(&expert, "train.steps", (double)rep.steps_done,
		                   &diag);
	if (err == FX_OK)
		err = set_meta_num(&expert, "train.tokens",
		                   (double)rep.steps_done * (double)a.batch *
		                       anchor.cfg.max_seq,
		                   &diag);
	if (err == FX_OK)
		err = set_meta_num(&expert, "train.seed", (double)a.seed, &diag);
	if (err == FX_OK)
		err = set_meta_num(&expert, "train.lr", a.lr, &diag);
	if (err == FX_OK)
		err = set_meta_num(&expert, "train.batch", (double)a.batch, &diag);
	if (err == FX_OK)
		err = set_meta_num(&expert, "train.z_loss", a.z_loss, &diag);
	if (err == FX_OK)
		err = set_meta_num(&expert, "train.bias_init", a.bias_init, &diag);
	if (err == FX_OK)
		err = set_meta_num(&expert, "train.router_lr_mult",
		                   a.router_lr_mult, &diag);
	if (err == FX_OK)
		err = set_meta_num(&expert, "train.anchor_decay",
		                   a.anchor_decay, &diag);
	if (err == FX_OK)
		err = set_meta_num(&expert, "train.public_mix", (double)a.mix,
		                   &diag);
	if (err == FX_OK)
		err = fx_expert_set_meta(&expert, "train.mix_router_only",
		                         a.mix_router_only ? "true" : "false",
		                         &diag);
	if (err == FX_OK)
		err = set_meta_num(&expert, "train.heldout_bpb", rep.heldout_bpb,
		                   &diag);
	if (err == FX_OK)
		err = fx_expert_save(&expert, a.out, &diag);
	if (err != FX_OK)
		goto fail;
	printf("expert: %s\ndomain: %s\nsteps: %" PRId64 "  time: %.1f s  "
	       "held-out bits/byte (2-expert model): %.4f\n",
	       a.out, a.domain, rep.steps_done, rep.seconds, rep.heldout_bpb);
	status = 0;
	goto out;
fail:
	fprintf(stderr, "train: %s: %s\n", fx_strerror(err), diag.msg);
out:
	free(mean);
	free(rows);
	fx_expert_release(&expert);
	fx_corpus_release(&corpus);
	fx_corpus_release(&pub);
	fx_routerpub_release(&rp);
	fx_model_release(&anchor);
	return status;
}
