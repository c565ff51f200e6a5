/* The signed manifest (.cvmfspublished) and the keys trusted for a repository.
 *
 * Keys are Ed25519 public keys in PEM (SubjectPublicKeyInfo) files. The keys trusted
 * for repository R (a whitelist, as CernVM-FS has) are the files CVMFS_PUBLIC_KEY names
 * (a ':'-separated list; set per repository in config.d/R.conf), or else, in
 * CVMFS_KEYS_DIR (default /etc/cvmfs/keys): R.pub, every *.pub in the directory R/, and
 * every *.pub in the directory D/ where D is R without its first label (sft.cern.ch:
 * cern.ch/, CernVM-FS's domain key directories). A key file of another name is not
 * trusted for R, even if it sits in the same directory.
 *
 * A manifest names its signing key by id (the first 16 hex digits of the SHA-256 of
 * the raw key); it is accepted only if that key is trusted for the repository, the
 * Ed25519 signature over every byte before the "--" line verifies (libsodium's Ed25519),
 * it names the repository being mounted, and it has an expiry time (E) still ahead
 * (the tag list, tags.c, is signed and checked the same way). Whether it is older than
 * the copy seen before (a replay) is trust.c's check. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cvmfs2.h"

/* the DER prefix of an Ed25519 SubjectPublicKeyInfo: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING } */
static const unsigned char ED25519_SPKI[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

const char *iso_time(int64_t t, char buf[32])
{
    time_t when = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&when, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, 32, "@%lld", (long long)t);
    return buf;
}

static int load_key(struct keyring *k, const char *path, char *err, size_t errlen)
{
    char text[4096];
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read public key %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *begin = strstr(text, "-----BEGIN PUBLIC KEY-----"), *end = strstr(text, "-----END PUBLIC KEY-----");
    if (!begin || !end || end < begin) {
        snprintf(err, errlen, "%s is not a PEM public key", path);
        return -1;
    }
    begin += strlen("-----BEGIN PUBLIC KEY-----");
    unsigned char der[128];
    size_t derlen = 0;
    if (base64_decode(begin, end - begin, der, sizeof der, &derlen) != 0 ||
        derlen != sizeof ED25519_SPKI + ED25519_KEY_BYTES || memcmp(der, ED25519_SPKI, sizeof ED25519_SPKI)) {
        snprintf(err, errlen, "%s is not an Ed25519 public key", path);
        return -1;
    }
    if (k->n >= MAX_LIST) {
        snprintf(err, errlen, "too many public keys (at most %d)", MAX_LIST);
        return -1;
    }
    unsigned char digest[SHA256_BYTES];
    char hex[2 * SHA256_BYTES + 1];
    memcpy(k->keys[k->n], der + sizeof ED25519_SPKI, ED25519_KEY_BYTES);
    sha256_once(k->keys[k->n], ED25519_KEY_BYTES, digest);
    hex_encode(digest, sizeof digest, hex);
    snprintf(k->ids[k->n], sizeof k->ids[k->n], "%.16s", hex);
    log_msg(LOG_DEBUG_, "trusting key %s from %s", k->ids[k->n], path);
    k->n++;
    return 0;
}

/* every *.pub file in dir (absent: none); 0 or -1 */
static int load_dir(struct keyring *k, const char *dir, char *err, size_t errlen)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort), rc = 0;
    if (n < 0)
        return 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]->d_name);
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (rc == 0 && len > 4 && strcmp(names[i]->d_name + len - 4, ".pub") == 0 && stat(path, &st) == 0 &&
            S_ISREG(st.st_mode))
            rc = load_key(k, path, err, errlen);
        free(names[i]);
    }
    free(names);
    return rc;
}

int keyring_load(struct keyring *k, const char *keyfiles, const char *keydir, const char *repo, char *err,
                 size_t errlen)
{
    memset(k, 0, sizeof *k);
    if (keyfiles && *keyfiles) {
        char buf[4096];
        snprintf(k->where, sizeof k->where, "CVMFS_PUBLIC_KEY=%s", keyfiles);
        snprintf(buf, sizeof buf, "%s", keyfiles);
        for (char *save, *tok = strtok_r(buf, ":", &save); tok; tok = strtok_r(NULL, ":", &save))
            if (load_key(k, tok, err, errlen) < 0)
                return -1;
    } else {
        char path[4096];
        struct stat st;
        const char *domain = strchr(repo, '.');
        if (domain && domain[1])
            snprintf(k->where, sizeof k->where, "%s/%s.pub, %s/%s/*.pub, %s/%s/*.pub", keydir, repo, keydir, repo,
                     keydir, domain + 1);
        else
            snprintf(k->where, sizeof k->where, "%s/%s.pub, %s/%s/*.pub", keydir, repo, keydir, repo);
        snprintf(path, sizeof path, "%s/%s.pub", keydir, repo);
        if (stat(path, &st) == 0 && load_key(k, path, err, errlen) < 0)
            return -1;
        snprintf(path, sizeof path, "%s/%s", keydir, repo);
        if (load_dir(k, path, err, errlen) < 0)
            return -1;
        if (domain && domain[1]) {
            snprintf(path, sizeof path, "%s/%s", keydir, domain + 1);
            if (load_dir(k, path, err, errlen) < 0)
                return -1;
        }
    }
    if (k->n == 0) {
        snprintf(err, errlen, "no public keys for %s (looked for %s): nothing can be verified", repo, k->where);
        return -1;
    }
    return 0;
}

int signed_split(const unsigned char *data, size_t len, const char *what, char **body, size_t *body_len,
                 unsigned char sig[ED25519_SIG_BYTES], char *err, size_t errlen)
{
    char *text = malloc(len + 1);
    memcpy(text, data, len);
    text[len] = 0;
    *body = NULL;
    if (strlen(text) != len) {
        snprintf(err, errlen, "the %s holds a NUL byte", what);
        goto fail;
    }
    char *sep = strstr(text, "\n--\n");
    if (!sep) {
        snprintf(err, errlen, "the %s has no '--' line before its signature", what);
        goto fail;
    }
    if (hex_decode(sep + 4, sig, ED25519_SIG_BYTES) != 0) {
        snprintf(err, errlen, "the %s's signature is not %d bytes of hex", what, ED25519_SIG_BYTES);
        goto fail;
    }
    sep[1] = 0;
    *body_len = sep + 1 - text;
    *body = text;
    return 0;
fail:
    free(text);
    return -1;
}

int signed_check(const struct keyring *k, const char *what, const char *repo, const char *key_id,
                 const unsigned char sig[ED25519_SIG_BYTES], const unsigned char *data, size_t body_len,
                 char *err, size_t errlen)
{
    int key = -1;
    for (int i = 0; i < k->n; i++)
        if (strcmp(k->ids[i], key_id) == 0)
            key = i;
    if (key < 0) {
        char trusted[MAX_LIST * 18 + 1] = "";
        for (int i = 0; i < k->n; i++) {
            strcat(trusted, i ? " " : "");
            strcat(trusted, k->ids[i]);
        }
        snprintf(err, errlen, "the %s is signed by an unknown key %s: it is not one of the keys trusted for %s "
                 "(%s, from %s)", what, key_id[0] ? key_id : "(none)", repo, trusted, k->where);
        return -1;
    }
    if (ed25519_verify(k->keys[key], sig, data, body_len) != 0) {
        snprintf(err, errlen, "bad signature: the %s does not verify with key %s", what, key_id);
        return -1;
    }
    return 0;
}

int expiry_check(const char *what, int64_t expires, int64_t now, char *err, size_t errlen)
{
    char when[32], at[32];
    if (expires <= 0) {
        snprintf(err, errlen, "the %s has no expiry time (no E line: an older publisher signed it; the publisher "
                 "must re-sign it with 'appbuild fs resign')", what);
        return -1;
    }
    if (now >= expires) {
        snprintf(err, errlen, "the %s expired at %s (now %s); the publisher must re-sign it", what,
                 iso_time(expires, when), iso_time(now, at));
        return -1;
    }
    return 0;
}

int parse_number(const char *v, uint64_t *out)
{
    char *end;
    if (!*v || strspn(v, "0123456789") != strlen(v))
        return -1;
    errno = 0;
    *out = strtoull(v, &end, 10);
    return errno ? -1 : 0;
}

int manifest_verify(const unsigned char *data, size_t len, const struct keyring *k, const char *repo, int64_t now,
                    struct manifest *m, char *err, size_t errlen)
{
    char *text = NULL;
    size_t body_len;
    unsigned char sig[ED25519_SIG_BYTES];
    int rc = -1;

    memset(m, 0, sizeof *m);
    m->ttl = 240;
    if (signed_split(data, len, "manifest", &text, &body_len, sig, err, errlen) < 0)
        return -1;
    int have_c = 0, have_s = 0, have_n = 0;
    uint64_t value;
    char algorithm[32] = "sha256", bad = 0;
    for (char *save, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *v = line + 1;
        switch (line[0]) {
        case 'C':
            snprintf(m->catalog, sizeof m->catalog, "%s", v);
            have_c = strlen(v) == HASH_HEX && strspn(v, "0123456789abcdef") == HASH_HEX;
            break;
        case 'B': m->catalog_size = strtoull(v, NULL, 10); break;
        case 'S':
            have_s = parse_number(v, &m->revision) == 0;
            break;
        case 'N': snprintf(m->repo, sizeof m->repo, "%s", v); have_n = 1; break;
        case 'T':
            if (parse_number(v, &value) < 0)
                bad = 'T';
            m->timestamp = (int64_t)value;
            break;
        case 'E':
            if (parse_number(v, &value) < 0)
                bad = 'E';
            m->expires = (int64_t)value;
            break;
        case 'D': m->ttl = strtol(v, NULL, 10); break;
        case 'A': snprintf(algorithm, sizeof algorithm, "%s", v); break;
        case 'K': snprintf(m->key_id, sizeof m->key_id, "%s", v); break;
        default: break;  /* fields of later versions */
        }
    }
    if (!have_c || !have_s || !have_n || bad) {
        snprintf(err, errlen, "the manifest lacks %s", !have_c ? "a valid catalog hash (C)" :
                 !have_s ? "a revision (S)" : !have_n ? "a repository name (N)" :
                 bad == 'T' ? "a valid time (T)" : "a valid expiry time (E)");
        goto out;
    }
    if (strcmp(algorithm, "sha256") != 0) {
        snprintf(err, errlen, "the manifest uses hash algorithm '%s'; only sha256 is known", algorithm);
        goto out;
    }
    if (signed_check(k, "manifest", repo, m->key_id, sig, data, body_len, err, errlen) < 0)
        goto out;
    if (strcmp(m->repo, repo) != 0) {
        snprintf(err, errlen, "the manifest is for repository '%s', not '%s'", m->repo, repo);
        goto out;
    }
    if (now && expiry_check("manifest", m->expires, now, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    free(text);
    return rc;
}
