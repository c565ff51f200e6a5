/* Configuration, read as CernVM-FS does: /etc/cvmfs/default.conf, default.local,
 * config.d/REPO.conf, config.d/REPO.local; a later file overrides an earlier one.
 *
 * Lines are KEY=VALUE (optionally 'export KEY=VALUE'), values may be quoted with
 * '...' or "..."; '#' starts a comment. The files are parsed, not run by a shell:
 * no $VARIABLE expansion. In values, @fqrn@ stands for the repository name and
 * @org@ for its first label (atlas for atlas.cern.ch). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvmfs2.h"

#define MAX_KEYS 128

struct config {
    char *keys[MAX_KEYS];
    char *values[MAX_KEYS];
    int n;
};

static void set(struct config *c, const char *key, const char *value)
{
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->keys[i], key) == 0) {
            free(c->values[i]);
            c->values[i] = strdup(value);
            return;
        }
    }
    if (c->n < MAX_KEYS) {
        c->keys[c->n] = strdup(key);
        c->values[c->n] = strdup(value);
        c->n++;
    }
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = 0;
    return s;
}

/* 0 when read (or absent), -1 with err set on a malformed line */
static int read_file(struct config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int number = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        number++;
        char *s = trim(line);
        if (*s == 0 || *s == '#')
            continue;
        if (strncmp(s, "export ", 7) == 0)
            s = trim(s + 7);
        char *eq = strchr(s, '=');
        if (!eq || eq == s) {
            snprintf(err, errlen, "%s line %d: expected KEY=VALUE", path, number);
            fclose(f);
            return -1;
        }
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        size_t n = strlen(value);
        if (n >= 2 && (value[0] == '"' || value[0] == '\'') && value[n - 1] == value[0]) {
            value[n - 1] = 0;
            value++;
        } else {
            char *hash = strstr(value, " #");
            if (hash) {
                *hash = 0;
                value = trim(value);
            }
        }
        set(c, key, value);
    }
    fclose(f);
    return 0;
}

struct config *config_load(const char *dir, const char *repo, char *err, size_t errlen)
{
    struct config *c = calloc(1, sizeof *c);
    char path[4096];
    const char *files[] = {"default.conf", "default.local", NULL};

    for (int i = 0; files[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (read_file(c, path, err, errlen) < 0)
            goto fail;
    }
    snprintf(path, sizeof path, "%s/config.d/%s.conf", dir, repo);
    if (read_file(c, path, err, errlen) < 0)
        goto fail;
    snprintf(path, sizeof path, "%s/config.d/%s.local", dir, repo);
    if (read_file(c, path, err, errlen) < 0)
        goto fail;
    return c;
fail:
    config_free(c);
    return NULL;
}

const char *config_get(const struct config *c, const char *key, const char *fallback)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->keys[i], key) == 0)
            return c->values[i];
    return fallback;
}

long config_long(const struct config *c, const char *key, long fallback)
{
    const char *v = config_get(c, key, NULL);
    char *end;
    if (!v || !*v)
        return fallback;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end) {
        log_msg(LOG_WARN_, "%s=%s is not a number; using %ld", key, v, fallback);
        return fallback;
    }
    return n;
}

void config_free(struct config *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++) {
        free(c->keys[i]);
        free(c->values[i]);
    }
    free(c);
}

static char *replace_all(const char *s, const char *what, const char *with)
{
    size_t wl = strlen(what), rl = strlen(with), count = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + wl, what))
        count++;
    char *out = malloc(strlen(s) + count * (rl > wl ? rl - wl : 0) + 1), *o = out;
    for (const char *p = s;;) {
        const char *hit = strstr(p, what);
        if (!hit) {
            strcpy(o, p);
            break;
        }
        memcpy(o, p, hit - p);
        o += hit - p;
        memcpy(o, with, rl);
        o += rl;
        p = hit + wl;
    }
    return out;
}

char *expand_repo(const char *s, const char *repo)
{
    char org[256];
    snprintf(org, sizeof org, "%s", repo);
    char *dot = strchr(org, '.');
    if (dot)
        *dot = 0;
    char *a = replace_all(s, "@fqrn@", repo);
    char *b = replace_all(a, "@org@", org);
    free(a);
    return b;
}
