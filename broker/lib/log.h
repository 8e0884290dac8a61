/*
 * log: leveled one-line logging to standard error.
 *
 * Each line: "2026-11-27T20:10:46.123Z LEVEL message". Standard output is
 * reserved for the start-up lines DESIGN.md fixes; nothing here writes it.
 * Safe to call from any thread (one write(2) per line).
 */
#ifndef RINGMQ_LOG_H
#define RINGMQ_LOG_H

enum log_level {
	LOG_DEBUG = 0,
	LOG_INFO = 1,
	LOG_WARN = 2,
	LOG_ERROR = 3,
};

/* Lines below level are dropped. Default LOG_INFO. */
void log_set_level(enum log_level level);

/* Lines as text (default) or as JSON objects
 * {"ts":"...","level":"info","msg":"..."}, one per line. */
void log_set_json(int is_json);

/* Parses "debug", "info", "warn" or "error"; -1 if none. */
int log_level_parse(const char *s);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
