/* SHA-256 and Ed25519 signature checks with libsodium: the two primitives the client
 * needs, in a library a tenth of OpenSSL's libcrypto (what keeps the network-booting
 * image's initramfs small). Hashing runs on every download, at several hundred MB/s:
 * far more than the network brings. */
#include <ctype.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cvmfs2.h"

static void sodium_ready(void)
{
    /* idempotent and thread-safe; picks the fastest implementations for this CPU */
    if (sodium_init() < 0)
        abort();
}

void sha256_init(struct sha256 *h)
{
    sodium_ready();
    h->ctx = malloc(sizeof(crypto_hash_sha256_state));
    if (!h->ctx)
        abort();
    crypto_hash_sha256_init(h->ctx);
}

void sha256_update(struct sha256 *h, const void *data, size_t len)
{
    crypto_hash_sha256_update(h->ctx, data, len);
}

void sha256_final(struct sha256 *h, unsigned char out[SHA256_BYTES])
{
    crypto_hash_sha256_final(h->ctx, out);
    free(h->ctx);
    h->ctx = NULL;
}

void sha256_free(struct sha256 *h)
{
    free(h->ctx);
    h->ctx = NULL;
}

void sha256_once(const void *data, size_t len, unsigned char out[SHA256_BYTES])
{
    sodium_ready();
    crypto_hash_sha256(out, data, len);
}

int ed25519_verify(const unsigned char key[ED25519_KEY_BYTES], const unsigned char sig[ED25519_SIG_BYTES],
                   const unsigned char *msg, size_t len)
{
    sodium_ready();
    return crypto_sign_ed25519_verify_detached(sig, msg, len, key) == 0 ? 0 : -1;
}

int base64_decode(const char *in, size_t inlen, unsigned char *out, size_t outmax, size_t *outlen)
{
    sodium_ready();
    return sodium_base642bin(out, outmax, in, inlen, " \t\r\n", outlen, NULL, sodium_base64_VARIANT_ORIGINAL) == 0
               ? 0 : -1;
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
