/* fx_logger: levelled lines and progress bars on stderr. */
#include "flexo/log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void fx_logger_init(fx_logger *log, fx_log_level level, const char *tag)
{
	log->level = level;
	log->out = stderr;
	log->tty = isatty(fileno(stderr)) != 0;
	log->tag = tag;
}

int fx_log_level_parse(const char *name, fx_log_level *out)
{
	static const char *const names[] = {"debug", "info", "warn", "error",
	                                    "quiet"};
	for (int i = 0; i < 5; i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (fx_log_level)i;
			return 0;
		}
	}
	return -1;
}

void fx_log(const fx_logger *log, fx_log_level level, const char *fmt, ...)
{
	static const char *const marks[] = {"debug", "info", "warn", "error"};
	char stamp[32];
	time_t now;
	struct tm tm;
	va_list ap;

	if (log == NULL || level < log->level || level >= FX_QUIET)
		return;
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	fprintf(log->out, "%s %s%s%s: ", stamp, log->tag ? log->tag : "",
	        log->tag ? " " : "", marks[level]);
	va_start(ap, fmt);
	vfprintf(log->out, fmt, ap);
	va_end(ap);
	fputc('\n', log->out);
	fflush(log->out);
}

void fx_progress(const fx_logger *log, const char *label, uint64_t done,
                 uint64_t total, const char *extra)
{
	enum { WIDTH = 30 };
	char bar[WIDTH + 1];
	int filled;

	if (log == NULL || log->level > FX_INFO)
		return;
	if (!log->tty) {
		fprintf(log->out, "%s %llu/%llu %s\n", label,
		        (unsigned long long)done, (unsigned long long)total,
		        extra ? extra : "");
		fflush(log->out);
		return;
	}
	filled = total ? (int)((done * WIDTH) / total) : 0;
	if (filled > WIDTH)
		filled = WIDTH;
	memset(bar, '#', (size_t)filled);
	memset(bar + filled, '.', (size_t)(WIDTH - filled));
	bar[WIDTH] = '\0';
	fprintf(log->out, "\r%s [%s] %llu/%llu %s\033[K", label, bar,
	        (unsigned long long)done, (unsigned long long)total,
	        extra ? extra : "");
	fflush(log->out);
}

void fx_progress_end(const fx_logger *log)
{
	if (log != NULL && log->tty && log->level <= FX_INFO) {
		fputc('\n', log->out);
		fflush(log->out);
	}
}
