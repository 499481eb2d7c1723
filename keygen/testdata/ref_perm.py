# Independent reference of keygen's permutation, written from docs/architecture.md ("Session keys") alone
# (python3 + the "cryptography" package). It prints the vectors pinned by
# TestPermutationGolden: python3 testdata/ref_perm.py
import hmac, hashlib, math
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

def perm(secret: bytes, digits: int):
    key = hmac.new(secret, b"switchboard keygen v1 permutation key", hashlib.sha256).digest()
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    off = 10 ** (digits - 1); n = 9 * off
    a = math.isqrt(n)
    if a * a < n: a += 1
    def F(i, v):
        blk = v.to_bytes(8, "big") + bytes([i, digits]) + b"sbkgv1"
        w = int.from_bytes(enc.update(blk)[:8], "big")
        return (w * a) >> 64
    def apply(x):
        while True:
            l, r = divmod(x, a)
            for i in range(12):
                l, r = r, (l + F(i, r)) % a
            x = l * a + r
            if x < n: return x
    return lambda c: off + apply(c)

s = b"switchboard-test-secret-0123456789"
for d, cs in [(6, [0, 1, 899999]), (9, [0, 1, 2, 899999999]), (18, [0, 1, 899999999999999999])]:
    k = perm(s, d)
    print(d, [k(c) for c in cs])
print(hmac.new(s, b"switchboard keygen v1 secret fingerprint", hashlib.sha256).digest()[:16].hex())
