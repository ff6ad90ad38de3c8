/* The training loop: a tiny model learns (held-out bits/byte falls well
 * below the byte-unigram baseline), two runs with one seed are bitwise
 * equal, and an interrupted run resumed from its state file ends bitwise
 * where the uninterrupted run ends. Model files round-trip. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "flexo/corpus.h"
#include "flexo/fsutil.h"
#include "flexo/modelfile.h"
#include "flexo/trainer.h"
#include "fx_test.h"

static char dir[256];

/* A corpus with structure a tiny model can learn: repeated phrases. */
static void make_corpus(const char *path)
{
	static const char *const words[] = {"the ", "cat ", "sat ", "on ",
	                                    "a ", "mat. ", "dog ", "ran "};
	char name[512], text[2048];
	fx_rng rng;

	fx_rng_seed(&rng, 7);
	CHECK_OK(fx_mkdir_p(path, 0755, NULL));
	for (int d = 0; d < 40; d++) {
		size_t n = 0;
		while (n < sizeof(text) - 16) {
			const char *w = words[fx_rng_below(&rng, 8)];
			size_t len = strlen(w);
			memcpy(text + n, w, len);
			n += len;
		}
		snprintf(name, sizeof(name), "%s/doc%02d.txt", path, d);
		CHECK_OK(fx_write_file_atomic(name, text, n, 0644, NULL));
	}
}

static void tiny_opts(fx_train_opts *o, const fx_config *cfg,
                      const char *state)
{
	fx_train_opts_defaults(o, cfg);
	o->batch = 4;
	o->seq = 32;
	o->steps = 300;
	o->adam.lr = 1e-2f;
	o->adam.warmup_steps = 5;
	o->eval_every = 0;
	o->eval_tokens = 4096;
	o->ckpt_every = 20;
	o->state_path = state;
}

static int train_tiny(fx_model *m, const fx_corpus *c, const char *state,
                      int64_t stop_after, fx_train_report *rep)
{
	fx_config cfg;
	fx_train_opts o;
	fx_diag diag = {{0}};
	fx_err err;

	if (m->params == NULL) {
		CHECK_OK(fx_config_preset("tiny", &cfg, NULL));
		CHECK_OK(fx_model_init(m, &cfg, true, NULL));
		fx_model_init_weights(m, 3);
	}
	tiny_opts(&o, &m->cfg, state);
	o.stop_after = stop_after;
	err = fx_train_run(m, c, &o, NULL, rep, &diag);
	CHECK_MSG(err == FX_OK, "%s", diag.msg);
	return err;
}

static void test_learns_and_deterministic(void)
{
	char corpus_dir[300], s1[300], s2[300];
	fx_corpus c = {0};
	fx_model a = {0}, b = {0};
	fx_train_report ra, rb;
	fx_diag diag = {{0}};

	snprintf(corpus_dir, sizeof(corpus_dir), "%s/corpus", dir);
	snprintf(s1, sizeof(s1), "%s/a.state", dir);
	snprintf(s2, sizeof(s2), "%s/b.state", dir);
	make_corpus(corpus_dir);
	CHECK_MSG(fx_corpus_load(&c, corpus_dir, 0.2, &diag) == FX_OK, "%s",
	          diag.msg);
	CHECK(c.docs_heldout > 0 && c.docs_train > c.docs_heldout);

	train_tiny(&a, &c, s1, 0, &ra);
	train_tiny(&b, &c, s2, 0, &rb);
	CHECK(ra.steps_done == 300);
	CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);
	CHECK_MSG(ra.heldout_bpb < 0.75 * fx_corpus_unigram_bpb(&c),
	          "held-out %.3f vs unigram %.3f", ra.heldout_bpb,
	          fx_corpus_unigram_bpb(&c));

	fx_model_release(&a);
	fx_model_release(&b);
	fx_corpus_release(&c);
}

static void test_resume_is_exact(void)
{
	char corpus_dir[300], s1[300], s2[300];
	fx_corpus c = {0};
	fx_model whole = {0}, part = {0}, resumed = {0};
	fx_train_report r;

	snprintf(corpus_dir, sizeof(corpus_dir), "%s/corpus", dir);
	snprintf(s1, sizeof(s1), "%s/whole.state", dir);
	snprintf(s2, sizeof(s2), "%s/part.state", dir);
	CHECK_OK(fx_corpus_load(&c, corpus_dir, 0.2, NULL));
	train_tiny(&whole, &c, s1, 0, &r);
	/* Stop after 25 steps (past the step-20 checkpoint), then resume in
	 * a fresh model initialised with a different seed: everything must
	 * come from the state file. */
	train_tiny(&part, &c, s2, 25, &r);
	CHECK(r.steps_done == 25);
	{
		fx_config cfg;
		CHECK_OK(fx_config_preset("tiny", &cfg, NULL));
		CHECK_OK(fx_model_init(&resumed, &cfg, true, NULL));
		fx_model_init_weights(&resumed, 99);
	}
	train_tiny(&resumed, &c, s2, 0, &r);
	CHECK(r.steps_done == 300);
	CHECK(memcmp(whole.params, resumed.params,
	             whole.n_params * sizeof(float)) == 0);
	fx_model_release(&whole);
	fx_model_release(&part);
	fx_model_release(&resumed);
	fx_corpus_release(&c);
}

static void test_modelfile_round_trip(void)
{
	char path[300];
	fx_config cfg;
	fx_model m = {0}, back = {0}, other = {0};
	fx_diag diag = {{0}};

	snprintf(path, sizeof(path), "%s/m.safetensors", dir);
	CHECK_OK(fx_config_preset("tiny", &cfg, NULL));
	cfg.n_experts = 3;
	cfg.top_k = 2;
	cfg.router_bias = true;
	CHECK_OK(fx_model_init(&m, &cfg, false, NULL));
	fx_model_init_weights(&m, 5);
	CHECK_OK(fx_modelfile_save(&m, path, NULL, 0, NULL));
	CHECK_MSG(fx_modelfile_load(&back, path, false, &diag) == FX_OK, "%s",
	          diag.msg);
	CHECK(back.cfg.n_experts == 3 && back.cfg.top_k == 2 &&
	      back.cfg.router_bias && back.n_params == m.n_params);
	CHECK(memcmp(back.params, m.params, m.n_params * sizeof(float)) == 0);

	/* A dense model cannot read the 3-expert file: tensors differ. */
	{
		fx_st_file *f = NULL;
		fx_config dense;
		CHECK_OK(fx_config_preset("tiny", &dense, NULL));
		CHECK_OK(fx_model_init(&other, &dense, false, NULL));
		CHECK_OK(fx_st_open(path, &f, NULL));
		CHECK(fx_modelfile_read_into(&other, f, false, &diag) ==
		      FX_EMISMATCH);
		CHECK_MSG(strstr(diag.msg, "mlp.gate.weight") != NULL, "%s",
		          diag.msg);
		fx_st_close(f);
	}
	fx_model_release(&m);
	fx_model_release(&back);
	fx_model_release(&other);
}

int main(void)
{
	char cmd[300];
	snprintf(dir, sizeof(dir), "/tmp/fx-trainer-test.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	fx_model_set_threads(1);
	RUN(test_learns_and_deterministic);
	RUN(test_resume_is_exact);
	RUN(test_modelfile_round_trip);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return FX_TEST_REPORT();
}
