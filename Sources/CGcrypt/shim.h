// libgcrypt (GnuPG's crypto library), as the gateway's JWT signature check sees it. Nothing but
// ZPubGateway's SignatureKey imports this module.
//
// Why libgcrypt: libsystemd already loads it into zpubd, so checking signatures costs no
// memory at all until a token arrives; OpenSSL's libcrypto would add 1.6 MiB at start, and
// swift-crypto brought Foundation and a second BoringSSL (docs/performance.md, "Memory").
//
// libgcrypt's S-expression builder is variadic, which Swift cannot call: these wrappers build
// each expression the checks need, verify, and release what they built.
#ifndef ZPUB_CGCRYPT_SHIM_H
#define ZPUB_CGCRYPT_SHIM_H

#include <gcrypt.h>

// libgcrypt must be initialised once per process before use. libsystemd, in the same process,
// initialises it the same way when it needs it and skips that when it is done already, so
// whichever comes first does it. Returns 0 when the library is older than the headers.
static inline int zpub_gcrypt_initialize(void) {
    if (gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P)) return 1;
    if (!gcry_check_version(GCRYPT_VERSION)) return 0;
    // Public keys only: no secret key material, so no locked "secure memory" pool.
    gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
    gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
    return 1;
}

// RSASSA-PKCS1-v1_5 over a SHA-256 digest (JWS RS256). 0 when the signature is good.
static inline gcry_error_t zpub_gcrypt_verify_rsa_sha256(
    const void *modulus, size_t modulus_length, const void *exponent, size_t exponent_length,
    const void *digest, size_t digest_length, const void *signature, size_t signature_length) {
    gcry_sexp_t key = NULL, data = NULL, sig = NULL;
    gcry_error_t error = gcry_sexp_build(&key, NULL, "(public-key (rsa (n %b) (e %b)))",
        (int)modulus_length, modulus, (int)exponent_length, exponent);
    if (!error)
        error = gcry_sexp_build(&data, NULL, "(data (flags pkcs1) (hash sha256 %b))",
            (int)digest_length, digest);
    if (!error)
        error = gcry_sexp_build(&sig, NULL, "(sig-val (rsa (s %b)))", (int)signature_length, signature);
    if (!error) error = gcry_pk_verify(sig, data, key);
    gcry_sexp_release(sig);
    gcry_sexp_release(data);
    gcry_sexp_release(key);
    return error;
}

// Ed25519 (JWS EdDSA, RFC 8037) over the message itself. 0 when the signature is good.
static inline gcry_error_t zpub_gcrypt_verify_ed25519(
    const void *public_key, size_t public_key_length, const void *message, size_t message_length,
    const void *signature, size_t signature_length) {
    if (signature_length != 64) return gcry_error(GPG_ERR_BAD_SIGNATURE);
    gcry_sexp_t key = NULL, data = NULL, sig = NULL;
    gcry_error_t error = gcry_sexp_build(&key, NULL, "(public-key (ecc (curve Ed25519) (flags eddsa) (q %b)))",
        (int)public_key_length, public_key);
    if (!error)
        error = gcry_sexp_build(&data, NULL, "(data (flags eddsa) (hash-algo sha512) (value %b))",
            (int)message_length, message);
    if (!error)
        error = gcry_sexp_build(&sig, NULL, "(sig-val (eddsa (r %b) (s %b)))",
            32, signature, 32, (const char *)signature + 32);
    if (!error) error = gcry_pk_verify(sig, data, key);
    gcry_sexp_release(sig);
    gcry_sexp_release(data);
    gcry_sexp_release(key);
    return error;
}

#endif
