/* The tag list (.cvmfstags, next to .cvmfspublished): the repository's named revisions,
 * signed as the manifest is (Ed25519 over every byte before the "--" line):
 *
 *   N<repository>
 *   S<the revision of the manifest it was written with>
 *   T<unix time signed>
 *   E<unix time it expires>
 *   K<key id>
 *   G<name> <revision> <catalog hash> <catalog size> <unix time tagged>
 *   G...            (one line per tag, revision ascending; the last is the newest)
 *   --
 *   <128 hex digits>
 *
 * Tag names are [A-Za-z0-9][A-Za-z0-9._+~-]{0,127} and never "latest", which means the
 * newest tag. A list is accepted on the manifest's terms (manifest.c): its key trusted
 * for the repository, its signature good, the repository's, its expiry ahead; whether
 * it is older than the cached copy is trust.c's check. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvmfs2.h"

static const char NAME_CHARS[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+~-";

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= TAG_NAME_MAX && strspn(name, NAME_CHARS) == n && strchr("._+~-", name[0]) == NULL &&
           strcmp(name, "latest") != 0;
}

/* one G line's value: "name revision hash size time" */
static int parse_tag(char *v, struct tag *t)
{
    char *fields[6], *save;
    int n = 0;
    for (char *tok = strtok_r(v, " ", &save); tok && n < 6; tok = strtok_r(NULL, " ", &save))
        fields[n++] = tok;
    uint64_t when;
    if (n != 5 || !valid_name(fields[0]) || parse_number(fields[1], &t->revision) < 0 ||
        strlen(fields[2]) != HASH_HEX || strspn(fields[2], "0123456789abcdef") != HASH_HEX ||
        parse_number(fields[3], &t->catalog_size) < 0 || parse_number(fields[4], &when) < 0)
        return -1;
    snprintf(t->name, sizeof t->name, "%s", fields[0]);
    snprintf(t->catalog, sizeof t->catalog, "%s", fields[2]);
    t->timestamp = (int64_t)when;
    return 0;
}

void taglist_free(struct taglist *t)
{
    free(t->tags);
    memset(t, 0, sizeof *t);
}

int taglist_verify(const unsigned char *data, size_t len, const struct keyring *k, const char *repo, int64_t now,
                   struct taglist *t, char *err, size_t errlen)
{
    char *text = NULL;
    size_t body_len;
    unsigned char sig[ED25519_SIG_BYTES];
    int rc = -1, have_n = 0, have_s = 0, have_t = 0, cap = 0, lineno = 0;
    uint64_t value;

    taglist_free(t);
    if (signed_split(data, len, "tag list", &text, &body_len, sig, err, errlen) < 0)
        return -1;
    for (char *line = text, *next; *line; line = next) {
        next = strchr(line, '\n');
        *next++ = 0;  /* the body ends with a newline */
        lineno++;
        char *v = line + 1;
        switch (line[0]) {
        case 'N': snprintf(t->repo, sizeof t->repo, "%s", v); have_n = 1; break;
        case 'S': have_s = parse_number(v, &t->revision) == 0; break;
        case 'T':
            have_t = parse_number(v, &value) == 0;
            t->timestamp = (int64_t)value;
            break;
        case 'E':
            if (parse_number(v, &value) < 0) {
                snprintf(err, errlen, "the tag list's line %d is not a valid expiry time (E)", lineno);
                goto out;
            }
            t->expires = (int64_t)value;
            break;
        case 'K': snprintf(t->key_id, sizeof t->key_id, "%s", v); break;
        case 'G':
            if (t->n == cap)
                t->tags = realloc(t->tags, (cap = cap ? cap * 2 : 16) * sizeof *t->tags);
            memset(&t->tags[t->n], 0, sizeof t->tags[t->n]);
            if (parse_tag(v, &t->tags[t->n]) < 0) {
                snprintf(err, errlen, "the tag list's line %d is not 'G<name> <revision> <catalog hash> <size> "
                         "<time>' with a valid name", lineno);
                goto out;
            }
            for (int i = 0; i < t->n; i++)
                if (strcmp(t->tags[i].name, t->tags[t->n].name) == 0) {
                    snprintf(err, errlen, "the tag list names tag '%s' twice", t->tags[i].name);
                    goto out;
                }
            t->n++;
            break;
        default: break;  /* fields of later versions */
        }
    }
    if (!have_n || !have_s || !have_t) {
        snprintf(err, errlen, "the tag list lacks %s", !have_n ? "a repository name (N)" :
                 !have_s ? "a revision (S)" : "a time (T)");
        goto out;
    }
    if (signed_check(k, "tag list", repo, t->key_id, sig, data, body_len, err, errlen) < 0)
        goto out;
    if (strcmp(t->repo, repo) != 0) {
        snprintf(err, errlen, "the tag list is for repository '%s', not '%s'", t->repo, repo);
        goto out;
    }
    if (now && expiry_check("tag list", t->expires, now, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    free(text);
    if (rc < 0)
        taglist_free(t);
    return rc;
}

const struct tag *taglist_get(const struct taglist *t, const char *name, char *err, size_t errlen)
{
    if (strcmp(name, "latest") == 0) {
        if (t->n > 0)
            return &t->tags[t->n - 1];
        snprintf(err, errlen, "the tag list of %s (revision %llu) has no tags: 'latest' names none", t->repo,
                 (unsigned long long)t->revision);
        return NULL;
    }
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->tags[i].name, name) == 0)
            return &t->tags[i];
    int n = snprintf(err, errlen, "there is no tag '%s' in %s's tag list (revision %llu); its tags: ", name, t->repo,
                     (unsigned long long)t->revision);
    for (int i = 0; i < t->n && n > 0 && (size_t)n < errlen; i++)
        n += snprintf(err + n, errlen - n, "%s%s", i ? ", " : "", t->tags[i].name);
    if (t->n == 0 && n > 0 && (size_t)n < errlen)
        snprintf(err + n, errlen - n, "none");
    else if (n > 0 && (size_t)n < errlen)
        snprintf(err + n, errlen - n, " (or 'latest')");
    return NULL;
}
