/* The signed manifest (.cvmfspublished) and the keys the client trusts.
 *
 * Keys are Ed25519 public keys in PEM (SubjectPublicKeyInfo) files: those named by
 * CVMFS_PUBLIC_KEY (a ':'-separated list of files), or else every *.pub file in
 * CVMFS_KEYS_DIR (default /etc/cvmfs/keys). A manifest names its signing key by id
 * (the first 16 hex digits of the SHA-256 of the raw key); it is accepted only if
 * that key is trusted, the Ed25519 signature over every byte before the "--" line
 * verifies (OpenSSL's Ed25519), and it names the repository being mounted. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int keyring_load(struct keyring *k, const char *keyfiles, const char *keydir, char *err, size_t errlen)
{
    memset(k, 0, sizeof *k);
    if (keyfiles && *keyfiles) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", keyfiles);
        for (char *save, *tok = strtok_r(buf, ":", &save); tok; tok = strtok_r(NULL, ":", &save))
            if (load_key(k, tok, err, errlen) < 0)
                return -1;
    } else {
        DIR *d = opendir(keydir);
        if (!d) {
            snprintf(err, errlen, "cannot read the key directory %s: %s", keydir, strerror(errno));
            return -1;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t n = strlen(de->d_name);
            if (n > 4 && strcmp(de->d_name + n - 4, ".pub") == 0) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", keydir, de->d_name);
                if (load_key(k, path, err, errlen) < 0) {
                    closedir(d);
                    return -1;
                }
            }
        }
        closedir(d);
    }
    if (k->n == 0) {
        snprintf(err, errlen, "no public keys (CVMFS_PUBLIC_KEY, or *.pub in %s): nothing can be verified", keydir);
        return -1;
    }
    return 0;
}

int manifest_verify(const unsigned char *data, size_t len, const struct keyring *k, const char *repo,
                    struct manifest *m, char *err, size_t errlen)
{
    char *text = malloc(len + 1);
    int rc = -1;

    memcpy(text, data, len);
    text[len] = 0;
    memset(m, 0, sizeof *m);
    m->ttl = 240;
    if (strlen(text) != len) {
        snprintf(err, errlen, "the manifest holds a NUL byte");
        goto out;
    }
    char *sep = strstr(text, "\n--\n");
    if (!sep) {
        snprintf(err, errlen, "the manifest has no '--' line before its signature");
        goto out;
    }
    size_t body_len = sep + 1 - text;
    char *sighex = sep + 4;
    unsigned char sig[ED25519_SIG_BYTES];
    if (hex_decode(sighex, sig, sizeof sig) != 0) {
        snprintf(err, errlen, "the manifest's signature is not %zu bytes of hex", sizeof sig);
        goto out;
    }
    int have_c = 0, have_s = 0, have_n = 0;
    char algorithm[32] = "sha256";
    sep[1] = 0;
    for (char *save, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *v = line + 1;
        switch (line[0]) {
        case 'C':
            snprintf(m->catalog, sizeof m->catalog, "%s", v);
            have_c = strlen(v) == HASH_HEX && strspn(v, "0123456789abcdef") == HASH_HEX;
            break;
        case 'B': m->catalog_size = strtoull(v, NULL, 10); break;
        case 'S': m->revision = strtoull(v, NULL, 10); have_s = 1; break;
        case 'N': snprintf(m->repo, sizeof m->repo, "%s", v); have_n = 1; break;
        case 'T': m->timestamp = strtoll(v, NULL, 10); break;
        case 'D': m->ttl = strtol(v, NULL, 10); break;
        case 'A': snprintf(algorithm, sizeof algorithm, "%s", v); break;
        case 'K': snprintf(m->key_id, sizeof m->key_id, "%s", v); break;
        default: break;  /* fields of later versions */
        }
    }
    if (!have_c || !have_s || !have_n) {
        snprintf(err, errlen, "the manifest lacks %s", !have_c ? "a valid catalog hash (C)" :
                 !have_s ? "a revision (S)" : "a repository name (N)");
        goto out;
    }
    if (strcmp(algorithm, "sha256") != 0) {
        snprintf(err, errlen, "the manifest uses hash algorithm '%s'; only sha256 is known", algorithm);
        goto out;
    }
    int key = -1;
    for (int i = 0; i < k->n; i++)
        if (strcmp(k->ids[i], m->key_id) == 0)
            key = i;
    if (key < 0) {
        char trusted[MAX_LIST * 18 + 1] = "";
        for (int i = 0; i < k->n; i++) {
            strcat(trusted, i ? " " : "");
            strcat(trusted, k->ids[i]);
        }
        snprintf(err, errlen, "the manifest is signed by an unknown key %s (trusted: %s)",
                 m->key_id[0] ? m->key_id : "(none)", trusted);
        goto out;
    }
    if (ed25519_verify(k->keys[key], sig, data, body_len) != 0) {
        snprintf(err, errlen, "bad signature: the manifest does not verify with key %s", m->key_id);
        goto out;
    }
    if (strcmp(m->repo, repo) != 0) {
        snprintf(err, errlen, "the manifest is for repository '%s', not '%s'", m->repo, repo);
        goto out;
    }
    rc = 0;
out:
    free(text);
    return rc;
}
