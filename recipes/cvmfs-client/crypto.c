/* SHA-256 and Ed25519 signature checks with OpenSSL's libcrypto (EVP), which uses the
 * CPU's SHA extensions where there are any: hashing is on the path of every download. */
#include <ctype.h>
#include <openssl/evp.h>
#include <string.h>

#include "cvmfs2.h"

void sha256_init(struct sha256 *h)
{
    h->ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

void sha256_update(struct sha256 *h, const void *data, size_t len)
{
    EVP_DigestUpdate(h->ctx, data, len);
}

void sha256_final(struct sha256 *h, unsigned char out[SHA256_BYTES])
{
    unsigned int n = 0;
    EVP_DigestFinal_ex(h->ctx, out, &n);
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

void sha256_free(struct sha256 *h)
{
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

void sha256_once(const void *data, size_t len, unsigned char out[SHA256_BYTES])
{
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, data, len);
    sha256_final(&h, out);
}

int ed25519_verify(const unsigned char key[ED25519_KEY_BYTES], const unsigned char sig[ED25519_SIG_BYTES],
                   const unsigned char *msg, size_t len)
{
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, key, ED25519_KEY_BYTES);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = pkey && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, ED25519_SIG_BYTES, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return ok ? 0 : -1;
}

int base64_decode(const char *in, size_t inlen, unsigned char *out, size_t outmax, size_t *outlen)
{
    char clean[1024];
    size_t n = 0, pad = 0;
    for (size_t i = 0; i < inlen; i++) {
        if (isspace((unsigned char)in[i]))
            continue;
        if (n == sizeof clean - 1)
            return -1;
        clean[n++] = in[i];
    }
    if (n == 0 || n % 4 || (n / 4) * 3 > outmax)
        return -1;
    pad = (clean[n - 1] == '=') + (clean[n - 2] == '=');
    int got = EVP_DecodeBlock(out, (const unsigned char *)clean, (int)n);
    if (got < 0)
        return -1;
    *outlen = (size_t)got - pad;
    return 0;
}

int hex_decode(const char *in, unsigned char *out, size_t outlen)
{
    while (isspace((unsigned char)*in))
        in++;
    for (size_t i = 0; i < outlen; i++) {
        unsigned int byte;
        if (!isxdigit((unsigned char)in[2 * i]) || !isxdigit((unsigned char)in[2 * i + 1]) ||
            sscanf(in + 2 * i, "%2x", &byte) != 1)
            return -1;
        out[i] = (unsigned char)byte;
    }
    for (const char *rest = in + 2 * outlen; *rest; rest++)
        if (!isspace((unsigned char)*rest))
            return -1;
    return 0;
}
