/* Expert training: build the 2-expert model, train only expert 1's FFN,
 * router row and bias, and extract the expert. */
#include "flexo/expert_train.h"

#include <string.h>

void fx_expert_train_defaults(fx_expert_train_opts *o, const fx_config *cfg)
{
	memset(o, 0, sizeof(*o));
	fx_train_opts_defaults(&o->train, cfg);
	o->train.steps = 300;
	o->train.adam.warmup_steps = 30;
	o->train.fwd.z_loss = 1e-3f;
	o->train.eval_every = 0;
	o->train.ckpt_every = 0;
	o->bias_init = 0.0f;
}

fx_err fx_expert_train(const fx_model *anchor, const float *r_pub,
                       const float *r_init, const fx_corpus *domain,
                       const fx_expert_train_opts *o, const fx_logger *log,
                       fx_expert *out, fx_train_report *rep, fx_diag *diag)
{
	fx_expert seed = {0}, result = {0};
	const fx_expert *list[1] = {&seed};
	fx_train_opts topts = o->train;
	fx_model pair = {0};
	size_t fd;
	fx_err err;

	if (!(o->bias_init <= 0.0f))
		return fx_diag_set(diag, FX_EINVAL,
		                   "initial router bias %g must be <= 0",
		                   (double)o->bias_init);
	/* Expert 1 starts as a copy of the public FFN with row r_init. */
	err = fx_expert_init(&seed, &anchor->cfg, diag);
	if (err != FX_OK)
		return err;
	fd = (size_t)anchor->cfg.d_ff * (size_t)anchor->cfg.d_model;
	for (int l = 0; l < anchor->cfg.n_layers; l++) {
		const fx_layer *al = &anchor->layers[l];
		memcpy(seed.gate + l * fd, al->gate[0], fd * sizeof(float));
		memcpy(seed.up + l * fd, al->up[0], fd * sizeof(float));
		memcpy(seed.down + l * fd, al->down[0], fd * sizeof(float));
		seed.bias[l] = o->bias_init;
	}
	memcpy(seed.router, r_init,
	       (size_t)anchor->cfg.n_layers * (size_t)anchor->cfg.d_model *
	           sizeof(float));
	err = fx_moe_build(&pair, anchor, r_pub, list, 1, 2, true, diag);
	if (err != FX_OK)
		goto out;
	topts.freeze = fx_expert_training_freeze();
	err = fx_train_run(&pair, domain, &topts, log, rep, diag);
	if (err != FX_OK)
		goto out;
	err = fx_expert_init(&result, &anchor->cfg, diag);
	if (err == FX_OK)
		err = fx_expert_from_model(&result, &pair, 1, diag);
	if (err != FX_OK)
		goto out;
	*out = result;
	memset(&result, 0, sizeof(result));
out:
	fx_expert_release(&seed);
	fx_expert_release(&result);
	fx_model_release(&pair);
	return err;
}
