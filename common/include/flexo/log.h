/* A small logger to stderr with a level, and a progress line that redraws in
 * place on a terminal and prints plain lines otherwise. No global state: the
 * binary's main() owns one fx_logger and passes it down; every function that
 * takes a const fx_logger * accepts NULL (= silent). */
#ifndef FLEXO_LOG_H
#define FLEXO_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum fx_log_level {
	FX_DEBUG = 0,
	FX_INFO = 1,
	FX_WARN = 2,
	FX_ERROR = 3,
	FX_QUIET = 4,
} fx_log_level;

typedef struct fx_logger {
	fx_log_level level;
	FILE *out;      /* stderr unless a caller chooses otherwise */
	bool tty;       /* out is a terminal: progress redraws in place */
	const char *tag; /* program name shown in each line, may be NULL */
} fx_logger;

/* Initialises a logger on stderr at `level`; detects a terminal. */
void fx_logger_init(fx_logger *log, fx_log_level level, const char *tag);

/* Parses "debug", "info", "warn", "error", "quiet". Returns -1 if unknown. */
int fx_log_level_parse(const char *name, fx_log_level *out);

void fx_log(const fx_logger *log, fx_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Progress of long work: on a terminal one redrawn line with a bar; else a
 * plain line at most every `every` calls (the caller rate-limits). `done` and
 * `total` are in the caller's units; `what` labels them. */
void fx_progress(const fx_logger *log, const char *label, uint64_t done,
                 uint64_t total, const char *extra);

/* Ends a progress line on a terminal (prints the newline). */
void fx_progress_end(const fx_logger *log);

#endif
