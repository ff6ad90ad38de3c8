/* Model checkpoints as safetensors: every tensor of the model's tensor
 * table under its Hugging Face flex_olmo name, F32, with the model config in
 * __metadata__ (keys named as in HF config.json, "format" = "flexo-model-1").
 * Loading is strict: the exact tensor set the config implies, shapes
 * checked, every value finite. */
#ifndef FLEXO_MODELFILE_H
#define FLEXO_MODELFILE_H

#include "flexo/config.h"
#include "flexo/err.h"
#include "flexo/model.h"
#include "flexo/safetensors.h"

#define FX_MODELFILE_FORMAT "flexo-model-1"

/* Writes m's parameters to path (temporary file + fsync + rename). Extra
 * metadata pairs (may be NULL / 0) are stored beside the config. */
fx_err fx_modelfile_save(const fx_model *m, const char *path,
                         const fx_st_meta *extra, size_t n_extra,
                         fx_diag *diag);

/* Reads the config of an open model file from its metadata. */
fx_err fx_modelfile_config(const fx_st_file *f, fx_config *out, fx_diag *diag);

/* The config as HF-named metadata strings, shared by every file format that
 * carries a config (model files, expert files): write and read (read also
 * validates). */
fx_err fx_config_write_meta(fx_st_writer *w, const fx_config *cfg,
                            fx_diag *diag);
fx_err fx_config_read_meta(const fx_st_file *f, fx_config *out,
                           fx_diag *diag);

/* Loads path into *m: initialises it from the file's config (with a
 * gradient arena when `training`), then reads every tensor. On failure *m
 * is released. */
fx_err fx_modelfile_load(fx_model *m, const char *path, bool training,
                         fx_diag *diag);

/* Reads tensors of an open file into an initialised model whose config
 * matches; every model tensor must be present with the right shape unless
 * `partial`, in which case absent tensors are left as they are. Extra
 * tensors in the file are an error either way. */
fx_err fx_modelfile_read_into(fx_model *m, const fx_st_file *f, bool partial,
                              fx_diag *diag);

#endif
