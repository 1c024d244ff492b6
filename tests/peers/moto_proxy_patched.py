"""Job: run moto's own HTTPS-intercepting proxy (moto_proxy) with
tests/peers/moto_patch.py applied, for clients (the Go ECR helper) that cannot be
pointed at an endpoint URL.

Usage (same arguments as moto_proxy):
    $REPO/.test-work/venv/bin/python tests/peers/moto_proxy_patched.py -H 127.0.0.1 -p PORT
Clients then use HTTPS_PROXY=http://127.0.0.1:PORT and trust the proxy's CA, which
ships inside the moto package: print its path with
    $REPO/.test-work/venv/bin/python tests/peers/moto_proxy_patched.py --ca-path
(it is moto/moto_proxy/ca.crt, CertificateCreator.cacert). The proxy writes its
per-host leaf certs into moto/moto_proxy/certs/ of the venv.
"""
import os
import sys

sys.dont_write_bytecode = True  # keep tests/peers free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import moto_patch  # noqa: E402

if __name__ == "__main__":
    if sys.argv[1:] == ["--ca-path"]:
        from moto.moto_proxy.certificate_creator import CertificateCreator

        print(CertificateCreator.cacert)
        sys.exit(0)
    moto_patch.apply()
    from moto.proxy import main

    main(sys.argv[1:])
