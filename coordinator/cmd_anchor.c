/* `flexo-coordinator anchor train`: trains the dense anchor on a folder of
 * public text, with a held-out split, periodic held-out bits-per-byte,
 * checkpoint + resume, and a byte-unigram baseline for comparison. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "flexo/cli.h"
#include "flexo/corpus.h"
#include "flexo/embed.h"
#include "flexo/fsutil.h"
#include "flexo/modelfile.h"
#include "flexo/routerpub.h"
#include "flexo/trainer.h"

static void train_usage(FILE *out)
{
	fprintf(out,
	        "usage: flexo-coordinator anchor train --data DIR --out DIR "
	        "[options]\n\n"
	        "Trains the dense anchor model on the plain-text documents in "
	        "DIR.\nWrites OUT/anchor.safetensors and OUT/train-state."
	        "safetensors (resume state).\n\n"
	        "  --data DIR         folder of public text documents\n"
	        "  --out DIR          output folder (created)\n"
	        "  --preset NAME      tiny | small | medium | wide (default small)\n"
	        "  --steps N          training steps (default 1000)\n"
	        "  --batch B          sequences per step (default 8)\n"
	        "  --seq T            tokens per sequence (default: preset)\n"
	        "  --lr X             peak learning rate (default 1e-3)\n"
	        "  --warmup N         warm-up steps (default 100)\n"
	        "  --seed N           initialisation and sampling seed (default 1)\n"
	        "  --threads N        OpenBLAS threads (default 2)\n"
	        "  --heldout F        held-out document fraction (default 0.1)\n"
	        "  --eval-every N     steps between held-out evaluations "
	        "(default 200)\n"
	        "  --eval-tokens N    held-out bytes per evaluation, 0 = all "
	        "(default 65536)\n"
	        "  --ckpt-every N     steps between resume checkpoints "
	        "(default 200)\n"
	        "  --resume           continue from OUT/train-state.safetensors\n"
	        "  --stop-after N     stop after N steps of this run (keeps the "
	        "resume state)\n");
}

#define CMD "anchor train"
#define BIG INT64_MAX

static int cmd_anchor_train(int argc, char **argv, const fx_logger *log)
{
	static const struct option longopts[] = {
	    {"data", required_argument, 0, 'd'},
	    {"out", required_argument, 0, 'o'},
	    {"preset", required_argument, 0, 'p'},
	    {"steps", required_argument, 0, 's'},
	    {"batch", required_argument, 0, 'b'},
	    {"seq", required_argument, 0, 'T'},
	    {"lr", required_argument, 0, 'l'},
	    {"warmup", required_argument, 0, 'w'},
	    {"seed", required_argument, 0, 'S'},
	    {"threads", required_argument, 0, 't'},
	    {"heldout", required_argument, 0, 'H'},
	    {"eval-every", required_argument, 0, 'e'},
	    {"eval-tokens", required_argument, 0, 'E'},
	    {"ckpt-every", required_argument, 0, 'c'},
	    {"resume", no_argument, 0, 'r'},
	    {"stop-after", required_argument, 0, 'x'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	const char *data = NULL, *out_dir = NULL, *preset = "small";
	int64_t steps = 1000, batch = 8, seq = 0, warmup = 100, seed = 1,
	        threads = 2, eval_every = 200, eval_tokens = 65536,
	        ckpt_every = 200, stop_after = 0;
	double lr = 1e-3, heldout = 0.1;
	bool resume = false;
	char model_path[4096], state_path[4096];
	fx_config cfg;
	fx_model model = {0};
	fx_corpus corpus = {0};
	fx_train_opts opts;
	fx_train_report rep;
	fx_diag diag = {{0}};
	struct stat st;
	int opt, status = 1;
	fx_err err;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		int bad = 0;
		switch (opt) {
		case 'd': data = optarg; break;
		case 'o': out_dir = optarg; break;
		case 'p': preset = optarg; break;
		case 's': bad = fx_cli_int(CMD, "--steps", optarg, 1, BIG, &steps); break;
		case 'b': bad = fx_cli_int(CMD, "--batch", optarg, 1, BIG, &batch); break;
		case 'T': bad = fx_cli_int(CMD, "--seq", optarg, 2, BIG, &seq); break;
		case 'l': bad = fx_cli_num(CMD, "--lr", optarg, 0, 1e9, &lr); break;
		case 'w': bad = fx_cli_int(CMD, "--warmup", optarg, 0, BIG, &warmup); break;
		case 'S': bad = fx_cli_int(CMD, "--seed", optarg, 0, BIG, &seed); break;
		case 't': bad = fx_cli_int(CMD, "--threads", optarg, 1, 64, &threads); break;
		case 'H': bad = fx_cli_num(CMD, "--heldout", optarg, 0, 1, &heldout); break;
		case 'e': bad = fx_cli_int(CMD, "--eval-every", optarg, 0, BIG, &eval_every); break;
		case 'E': bad = fx_cli_int(CMD, "--eval-tokens", optarg, 0, BIG, &eval_tokens); break;
		case 'c': bad = fx_cli_int(CMD, "--ckpt-every", optarg, 0, BIG, &ckpt_every); break;
		case 'r': resume = true; break;
		case 'x': bad = fx_cli_int(CMD, "--stop-after", optarg, 1, BIG, &stop_after); break;
		case 'h': train_usage(stdout); return 0;
		default: train_usage(stderr); return 2;
		}
		if (bad)
			return 2;
	}
	if (data == NULL || out_dir == NULL || optind != argc) {
		fprintf(stderr, "anchor train: --data and --out are required%s\n",
		        optind != argc ? " (and no positional arguments)" : "");
		train_usage(stderr);
		return 2;
	}
	err = fx_config_preset(preset, &cfg, &diag);
	if (err != FX_OK)
		goto fail;
	if (seq > cfg.max_seq) {
		fprintf(stderr, "anchor train: --seq %" PRId64 " exceeds the "
		                "preset's max_seq %d\n", seq, cfg.max_seq);
		return 2;
	}
	snprintf(model_path, sizeof(model_path), "%s/anchor.safetensors", out_dir);
	snprintf(state_path, sizeof(state_path), "%s/train-state.safetensors",
	         out_dir);
	if (!resume && stat(state_path, &st) == 0) {
		fprintf(stderr, "anchor train: %s exists; pass --resume to continue "
		                "that run, or choose another --out\n",
		        state_path);
		return 2;
	}
	err = fx_mkdir_p(out_dir, 0755, &diag);
	if (err != FX_OK)
		goto fail;
	fx_model_set_threads((int)threads);
	err = fx_corpus_load(&corpus, data, heldout, &diag);
	if (err != FX_OK)
		goto fail;
	fx_log(log, FX_INFO,
	       "corpus %s: %zu train documents (%zu bytes), %zu held-out "
	       "(%zu bytes)",
	       data, corpus.docs_train, corpus.n_train - corpus.docs_train,
	       corpus.docs_heldout, corpus.n_heldout - corpus.docs_heldout);
	err = fx_model_init(&model, &cfg, true, &diag);
	if (err != FX_OK)
		goto fail;
	fx_model_init_weights(&model, (uint64_t)seed);
	fx_log(log, FX_INFO, "preset %s: d=%d L=%d H=%d d_ff=%d, %zu parameters",
	       preset, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff,
	       model.n_params);

	fx_train_opts_defaults(&opts, &cfg);
	opts.batch = (int)batch;
	opts.seq = seq ? (int)seq : cfg.max_seq;
	opts.steps = steps;
	opts.adam.lr = (float)lr;
	opts.adam.lr_min = (float)lr / 10;
	opts.adam.warmup_steps = warmup;
	opts.seed = (uint64_t)seed + 1;
	opts.eval_every = eval_every;
	opts.eval_tokens = (size_t)eval_tokens;
	opts.ckpt_every = ckpt_every;
	opts.state_path = state_path;
	opts.stop_after = stop_after;
	err = fx_train_run(&model, &corpus, &opts, log, &rep, &diag);
	if (err != FX_OK)
		goto fail;
	if (rep.steps_done < steps) {
		fx_log(log, FX_INFO,
		       "stopped at step %" PRId64 " of %" PRId64
		       "; resume with --resume",
		       rep.steps_done, steps);
		status = 0;
		goto out;
	}
	err = fx_modelfile_save(&model, model_path, NULL, 0, &diag);
	if (err != FX_OK)
		goto fail;
	printf("anchor: %s\n", model_path);
	printf("steps: %" PRId64 "  time: %.1f s  throughput: %.0f tokens/s\n",
	       rep.steps_done, rep.seconds, rep.tokens_per_s);
	printf("held-out bits/byte: %.4f  (byte-unigram baseline: %.4f)\n",
	       rep.heldout_bpb, fx_corpus_unigram_bpb(&corpus));
	status = 0;
	goto out;
fail:
	fprintf(stderr, "anchor train: %s: %s\n", fx_strerror(err), diag.msg);
out:
	fx_model_release(&model);
	fx_corpus_release(&corpus);
	return status;
}


static void embed_usage(FILE *out)
{
	fprintf(out,
	        "usage: flexo-coordinator anchor embed --anchor FILE --data DIR "
	        "--out FILE [options]\n\n"
	        "Makes the public router rows r_pub that ship with the anchor: "
	        "the anchor's\nmean-pooled hidden states over windows sampled "
	        "from the training split of\nthe public text, scaled to a fixed "
	        "norm. The file also records the embedder\nsettings, which every "
	        "contributor reuses for its own row.\n\n"
	        "  --anchor FILE      dense anchor model file\n"
	        "  --data DIR         folder of public text documents\n"
	        "  --out FILE         router rows file to write\n"
	        "  --mode MODE        shared | per-layer (default shared)\n"
	        "  --norm X           L2 norm of every row (default 1)\n"
	        "  --windows N        windows averaged (default 64)\n"
	        "  --heldout F        held-out fraction, as in training "
	        "(default 0.1)\n"
	        "  --seed N           window sampling seed (default 1)\n"
	        "  --threads N        OpenBLAS threads (default 2)\n");
}

static int cmd_anchor_embed(int argc, char **argv, const fx_logger *log)
{
	static const struct option longopts[] = {
	    {"anchor", required_argument, 0, 'a'},
	    {"data", required_argument, 0, 'd'},
	    {"out", required_argument, 0, 'o'},
	    {"mode", required_argument, 0, 'm'},
	    {"norm", required_argument, 0, 'n'},
	    {"windows", required_argument, 0, 'w'},
	    {"heldout", required_argument, 0, 'H'},
	    {"seed", required_argument, 0, 'S'},
	    {"threads", required_argument, 0, 't'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0}};
	const char *anchor_path = NULL, *data = NULL, *out_path = NULL;
	int64_t windows = 64, seed = 1, threads = 2;
	double norm = 1.0, heldout = 0.1;
	fx_embed_mode mode = FX_EMBED_SHARED;
	fx_model anchor = {0};
	fx_corpus corpus = {0};
	fx_routerpub rp = {0};
	float *mean = NULL;
	fx_diag diag = {{0}};
	int opt, status = 1;
	fx_err err;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		int bad = 0;
		switch (opt) {
		case 'a': anchor_path = optarg; break;
		case 'd': data = optarg; break;
		case 'o': out_path = optarg; break;
		case 'm':
			if (fx_embed_mode_parse(optarg, &mode) != 0) {
				fprintf(stderr, "anchor embed: --mode is shared or "
				                "per-layer, not '%s'\n", optarg);
				bad = 1;
			}
			break;
		case 'n': bad = fx_cli_num("anchor embed", "--norm", optarg, 1e-6, 1e6, &norm); break;
		case 'w': bad = fx_cli_int("anchor embed", "--windows", optarg, 1, 1000000, &windows); break;
		case 'H': bad = fx_cli_num("anchor embed", "--heldout", optarg, 0, 1, &heldout); break;
		case 'S': bad = fx_cli_int("anchor embed", "--seed", optarg, 0, BIG, &seed); break;
		case 't': bad = fx_cli_int("anchor embed", "--threads", optarg, 1, 64, &threads); break;
		case 'h': embed_usage(stdout); return 0;
		default: embed_usage(stderr); return 2;
		}
		if (bad)
			return 2;
	}
	if (anchor_path == NULL || data == NULL || out_path == NULL ||
	    optind != argc) {
		fprintf(stderr, "anchor embed: --anchor, --data and --out are "
		                "required\n");
		embed_usage(stderr);
		return 2;
	}
	fx_model_set_threads((int)threads);
	err = fx_modelfile_load(&anchor, anchor_path, false, &diag);
	if (err == FX_OK && anchor.cfg.n_experts != 1)
		err = fx_diag_set(&diag, FX_EINVAL, "%s is not a dense anchor",
		                  anchor_path);
	if (err == FX_OK)
		err = fx_corpus_load(&corpus, data, heldout, &diag);
	if (err != FX_OK)
		goto fail;
	rp.n_layers = anchor.cfg.n_layers;
	rp.d_model = anchor.cfg.d_model;
	rp.mode = mode;
	rp.norm = (float)norm;
	rp.windows = (int)windows;
	mean = malloc((size_t)rp.n_layers * rp.d_model * sizeof(float));
	rp.rows = malloc((size_t)rp.n_layers * rp.d_model * sizeof(float));
	if (mean == NULL || rp.rows == NULL) {
		err = fx_diag_set(&diag, FX_ENOMEM, "router rows");
		goto fail;
	}
	err = fx_embed_mean(&anchor, corpus.train, corpus.n_train,
	                    (int)windows, anchor.cfg.max_seq, (uint64_t)seed,
	                    mode, mean, &diag);
	if (err == FX_OK)
		err = fx_embed_rows(mean, NULL, rp.n_layers, rp.d_model,
		                    (float)norm, rp.rows, &diag);
	if (err == FX_OK)
		err = fx_routerpub_save(&rp, out_path, &diag);
	if (err != FX_OK)
		goto fail;
	fx_log(log, FX_INFO, "public router rows (%s, norm %g, %d windows): %s",
	       mode == FX_EMBED_SHARED ? "shared" : "per-layer", norm,
	       (int)windows, out_path);
	status = 0;
	goto out;
fail:
	fprintf(stderr, "anchor embed: %s: %s\n", fx_strerror(err), diag.msg);
out:
	free(mean);
	fx_routerpub_release(&rp);
	fx_model_release(&anchor);
	fx_corpus_release(&corpus);
	return status;
}

static const fx_command anchor_commands[] = {
    {"train", "train the dense anchor on public text", cmd_anchor_train},
    {"embed", "make the public router rows r_pub from public text",
     cmd_anchor_embed},
};

int cmd_anchor(int argc, char **argv, const fx_logger *log)
{
	return fx_cli_dispatch("flexo-coordinator anchor",
	                       "Anchor model: the dense model every expert "
	                       "starts from.",
	                       argc, argv, anchor_commands,
	                       (int)(sizeof(anchor_commands) /
	                             sizeof(*anchor_commands)),
	                       log);
}
