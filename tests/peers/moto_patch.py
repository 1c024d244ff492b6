"""Job: patch moto (in this process) for the e2e tests; imported by
moto_patched.py (moto_server) and moto_proxy_patched.py (moto_proxy).

Patches (applied by ``apply()``):
1. ECR GetAuthorizationToken: moto 5.x dates every token
   ``expiresAt = 2015-01-01T00:00:00Z``. We wrap ``ECRResponse.get_authorization_token``,
   call moto's own code, then replace only ``expiresAt`` in each authorizationData
   entry with now + ``MOTO_ECR_TOKEN_LIFETIME`` seconds (default 43200 = 12 h).
   The response shape stays moto's (same keys, same serializer).
2. If ``MOTO_CALL_LOG`` is set, append one line per call to that file:
       GetAuthorizationToken <region> <access-key-id>
       GetCallerIdentity <region> <access-key-id>
   region = the SigV4 credential scope of the Authorization header
   (``Credential=AKID/DATE/REGION/SERVICE/aws4_request``), else moto's own
   ``self.region`` (taken from the host / user agent / default).

Facts about moto 5.2.5 (verified in this venv with curl and a boto3 script):

* ECR token: ``authorizationToken = base64("AWS:" + password)`` with
  ``password = f"{registry_id}-auth-token"``; for account 123456789012 the
  decoded token is ``AWS:123456789012-auth-token``. Deterministic: same for every
  call, region and access key (the registry id is the caller's account, which is
  123456789012 unless the key belongs to an IAM user/assumed role of another
  account, or ``registryIds`` is passed; MOTO_ACCOUNT_ID overrides). Credentials
  from AssumeRole of arn:aws:iam::111122223333:role/X give account 111122223333
  and so ``AWS:111122223333-auth-token`` / https://111122223333.dkr.ecr....
  On the wire (JSON 1.1) ``expiresAt`` is epoch seconds, e.g. 1795450568.
* proxyEndpoint: ``https://<registry_id>.dkr.ecr.<region>.amazonaws.com`` for
  every region, including us-gov-*/cn-* (moto does not switch to
  ``ecr-fips`` or ``.amazonaws.com.cn``).
* STS GetCallerIdentity with arbitrary (unknown) access keys:
  ``UserId=AKIAIOSFODNN7EXAMPLE``, ``Account=123456789012``,
  ``Arn=arn:aws:sts::123456789012:user/moto`` (``aws-cn``/``aws-us-gov``
  partition in cn/gov regions).
* STS GetCallerIdentity with temporary credentials from sts:AssumeRole of a
  role created in moto IAM (``arn:aws:iam::123456789012:role/ROLE``):
  ``Arn=arn:aws:sts::123456789012:assumed-role/ROLE/SESSION``,
  ``UserId=<role-id>:SESSION``, ``Account=123456789012``. AssumeRole of a role
  that does not exist in IAM also works and returns the same ARN shape using the
  account id in the role ARN passed. Temporary access key ids start with ``ASIA``.
* Routing: on a plain endpoint (http://127.0.0.1:PORT, as with AWS_ENDPOINT_URL)
  moto picks the service from the SigV4 credential scope in the Authorization
  header (``.../us-east-1/ecr/aws4_request``); an unsigned request lands in S3.
  Signatures are not verified: any secret key works.
"""

import datetime as _dt
import os
import re
import threading

_LOCK = threading.Lock()
_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/")


def _region_and_key(resp):
    auth = ""
    try:
        auth = resp.headers.get("Authorization", "") or ""
    except Exception:
        pass
    m = _SCOPE.search(auth)
    if m:
        return m.group(2), m.group(1)
    return getattr(resp, "region", "-") or "-", resp.get_access_key()


def _log(resp, op):
    path = os.environ.get("MOTO_CALL_LOG")
    if not path:
        return
    region, key = _region_and_key(resp)
    with _LOCK, open(path, "a", encoding="utf-8") as f:
        f.write(f"{op} {region} {key}\n")
        f.flush()


def _lifetime():
    raw = os.environ.get("MOTO_ECR_TOKEN_LIFETIME", "43200")
    try:
        return int(raw)
    except ValueError as e:
        raise SystemExit(f"MOTO_ECR_TOKEN_LIFETIME must be an integer, got {raw!r}") from e


def apply():
    from moto.ecr.responses import ECRResponse
    from moto.sts.responses import TokenResponse

    if getattr(ECRResponse, "_e2e_patched", False):
        return
    lifetime = _lifetime()

    orig_token = ECRResponse.get_authorization_token

    def get_authorization_token(self):
        result = orig_token(self)
        now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
        for entry in result.result["authorizationData"]:
            entry["expiresAt"] = now + _dt.timedelta(seconds=lifetime)
        _log(self, "GetAuthorizationToken")
        return result

    orig_ident = TokenResponse.get_caller_identity

    def get_caller_identity(self):
        result = orig_ident(self)
        _log(self, "GetCallerIdentity")
        return result

    ECRResponse.get_authorization_token = get_authorization_token
    TokenResponse.get_caller_identity = get_caller_identity
    ECRResponse._e2e_patched = True
