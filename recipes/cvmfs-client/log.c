/* Messages: to stderr while the client runs in the foreground (before it detaches),
 * and appended to $CVMFS_USYSLOG (a file) when that is set, with a time stamp. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cvmfs2.h"

static FILE *logfile;
static int use_stderr = 1;
static int want_debug;
static char prefix[300] = "cvmfs2";

void log_open(const char *path, const char *repo, int to_stderr, int debug)
{
    snprintf(prefix, sizeof prefix, "cvmfs2[%s]", repo);
    use_stderr = to_stderr;
    want_debug = debug;
    if (path && *path) {
        logfile = fopen(path, "a");
        if (logfile)
            setvbuf(logfile, NULL, _IOLBF, 0);
        else
            fprintf(stderr, "%s: warning: cannot open log file %s\n", prefix, path);
    }
}

void log_stderr_off(void)
{
    use_stderr = 0;
}

void log_msg(int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    char text[2048];
    va_list ap;

    if (level == LOG_DEBUG_ && !want_debug)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (use_stderr && (level <= LOG_WARN_ || want_debug))
        fprintf(stderr, "%s: %s%s%s\n", prefix, level <= LOG_WARN_ ? names[level] : "",
                level <= LOG_WARN_ ? ": " : "", text);
    if (logfile) {
        char when[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(logfile, "%s %s %s: %s\n", when, prefix, names[level], text);
    }
}
