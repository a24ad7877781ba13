#!/usr/bin/env python3
"""Independent SUIT/COSE peer for ferry's cross-implementation tests (pycose + cbor2<6).

  suit_cose.py verify ENVELOPE PUBKEY_PEM
      Checks the SUIT digest over the bstr-wrapped manifest and every COSE_Sign1 block with
      pycose: draft-37 (tag 107) over the detached bstr-wrapped SUIT_Digest, RIOT draft-09
      over the attached payload. Exit 0 and "ok" only if all of them verify.

  suit_cose.py sign ietf|riot UNSIGNED_ENVELOPE PRIVKEY_PEM EdDSA|ES256 OUT
      Re-signs the manifest of UNSIGNED_ENVELOPE with pycose and writes a new envelope.

  suit_cose.py sign-multi UNSIGNED_ENVELOPE OUT PRIVKEY_PEM:ALG...
      draft-37 envelope whose one authentication block is a COSE_Sign (tag 98) with one
      signer per key, over the detached SUIT_Digest.

  suit_cose.py mac UNSIGNED_ENVELOPE OUT mac0|mac [PRIVKEY_PEM:ALG]
      draft-37 envelope authenticated by a COSE_Mac0 (tag 17) or COSE_Mac (tag 97) block under
      a random HMAC 256/256 key, followed by a COSE_Sign1 block when a key is given.
"""
import hashlib
import sys

import cbor2
from pycose.algorithms import EdDSA, Es256
from pycose.headers import Algorithm
from pycose.keys import CoseKey
from pycose.messages import Mac0Message, MacMessage, Sign1Message, SignMessage

TAG_ENVELOPE = 107
SHA256_IETF = -16  # COSE algorithm ID, draft-37
SHA256_RIOT = 2  # suit-tool's old enum, draft-09


def load_envelope(path):
    with open(path, "rb") as f:
        item = cbor2.loads(f.read())
    if isinstance(item, cbor2.CBORTag):
        if item.tag != TAG_ENVELOPE:
            raise SystemExit(f"unexpected tag {item.tag}")
        return "ietf", item.value
    return "riot", item


def manifest_item(envelope):
    # The digest covers the key-3 value with its bstr header; cbor2 re-encodes it minimally,
    # which is what both encodings require.
    return cbor2.dumps(envelope[3])


def verify(env_path, pub_path):
    fmt, env = load_envelope(env_path)
    with open(pub_path) as f:
        key = CoseKey.from_pem_public_key(f.read())
    auth = cbor2.loads(env[2])
    want = hashlib.sha256(manifest_item(env)).digest()
    if fmt == "ietf":
        digest_bstr, blocks = auth[0], auth[1:]
        if cbor2.loads(digest_bstr) != [SHA256_IETF, want]:
            raise SystemExit("FAIL: SUIT_Digest does not match the manifest")
    else:
        digest_bstr, blocks = None, auth
    if not blocks:
        raise SystemExit("FAIL: no signature blocks")
    for i, block in enumerate(blocks):
        msg = Sign1Message.decode(block)
        msg.key = key
        if fmt == "ietf":
            if msg.payload is not None:
                raise SystemExit(f"FAIL: block {i} attaches its payload; draft-37 detaches it")
            ok = msg.verify_signature(detached_payload=digest_bstr)
        else:
            if cbor2.loads(msg.payload) != [SHA256_RIOT, want]:
                raise SystemExit(f"FAIL: block {i} payload is not the manifest digest")
            ok = msg.verify_signature()
        if not ok:
            raise SystemExit(f"FAIL: block {i} does not verify")
    print(f"ok {fmt} {len(blocks)} signature(s)")


def sign(fmt, unsigned_path, priv_path, alg_name, out_path):
    _, env = load_envelope(unsigned_path)
    with open(priv_path) as f:
        key = CoseKey.from_pem_private_key(f.read())
    alg = {"EdDSA": EdDSA, "ES256": Es256}[alg_name]
    item = manifest_item(env)
    code = SHA256_IETF if fmt == "ietf" else SHA256_RIOT
    digest_bstr = cbor2.dumps([code, hashlib.sha256(item).digest()])
    if fmt == "ietf":
        msg = Sign1Message(phdr={Algorithm: alg}, payload=None)
        msg.key = key
        block = msg.encode(detached_payload=digest_bstr)
        out = cbor2.CBORTag(TAG_ENVELOPE, {2: cbor2.dumps([digest_bstr, block]), 3: env[3]})
    else:
        msg = Sign1Message(phdr={Algorithm: alg}, payload=digest_bstr)
        msg.key = key
        block = msg.encode()
        out = {2: cbor2.dumps([block]), 3: env[3]}
    with open(out_path, "wb") as f:
        f.write(cbor2.dumps(out))
    print(f"signed {fmt} with pycose {alg_name}")


def ietf_parts(unsigned_path):
    _, env = load_envelope(unsigned_path)
    item = manifest_item(env)
    return env, cbor2.dumps([SHA256_IETF, hashlib.sha256(item).digest()])


def signer_key(spec):
    path, alg_name = spec.rsplit(":", 1)
    with open(path) as f:
        return CoseKey.from_pem_private_key(f.read()), {"EdDSA": EdDSA, "ES256": Es256}[alg_name]


def write_ietf(out_path, env, digest_bstr, blocks):
    out = cbor2.CBORTag(TAG_ENVELOPE, {2: cbor2.dumps([digest_bstr, *blocks]), 3: env[3]})
    with open(out_path, "wb") as f:
        f.write(cbor2.dumps(out))


def sign_multi(unsigned_path, out_path, *specs):
    from pycose.messages.signer import CoseSignature

    env, digest_bstr = ietf_parts(unsigned_path)
    signers = []
    for spec in specs:
        key, alg = signer_key(spec)
        signers.append(CoseSignature(phdr={Algorithm: alg}, key=key))
    msg = SignMessage(phdr={}, payload=None, signers=signers)
    write_ietf(out_path, env, digest_bstr, [msg.encode(detached_payload=digest_bstr)])
    print(f"signed ietf with a COSE_Sign of {len(signers)} signer(s)")


def mac(unsigned_path, out_path, kind, *spec):
    import os

    from pycose.algorithms import Direct, HMAC256
    from pycose.keys import SymmetricKey
    from pycose.messages.recipient import DirectEncryption

    env, digest_bstr = ietf_parts(unsigned_path)
    key = SymmetricKey(k=os.urandom(32))
    if kind == "mac0":
        msg = Mac0Message(phdr={Algorithm: HMAC256}, payload=digest_bstr, key=key)
    else:
        recipient = DirectEncryption(uhdr={Algorithm: Direct})
        msg = MacMessage(phdr={Algorithm: HMAC256}, payload=digest_bstr, key=key, recipients=[recipient])
    blocks = [msg.encode()]
    if spec:
        signing_key, alg = signer_key(spec[0])
        sign1 = Sign1Message(phdr={Algorithm: alg}, payload=None)
        sign1.key = signing_key
        blocks.append(sign1.encode(detached_payload=digest_bstr))
    write_ietf(out_path, env, digest_bstr, blocks)
    print(f"authenticated ietf with {kind}" + (" and a signature" if spec else ""))


def main(argv):
    if len(argv) == 4 and argv[1] == "verify":
        verify(argv[2], argv[3])
    elif len(argv) == 7 and argv[1] == "sign":
        sign(*argv[2:])
    elif len(argv) >= 5 and argv[1] == "sign-multi":
        sign_multi(*argv[2:])
    elif len(argv) in (5, 6) and argv[1] == "mac":
        mac(*argv[2:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
