#!/usr/bin/env python3
"""HS256 JWTs: Portcullis against HAProxy's jwt_verify, same box, one run.

Both gateways do the same job on the same tokens (1000 clients, one HS256
token each, rotated per request by the same wrk Lua script as bench/run.py):

  haproxy-jwt      HAProxy 2.6: Bearer token, header alg must be HS256,
                   jwt_verify, exp checked against the clock, sub must equal
                   X-Client-ID, a per-client stick-table rate limit
                   (http_req_rate, never hit), Authorization removed,
                   X-Consumer-Client-ID and X-Request-ID set
  portcullis-jwt   Portcullis, `auth: { type: jwt }` per client profile
                   (sub must match X-Client-ID, exp/nbf/iat with leeway), a
                   per-client rate limit that is never hit
  portcullis-jwt-base  with --baseline DIR: the same from another build,
                   for an A/B comparison in the same run

Portcullis keeps verified tokens in a per-worker cache keyed by the
token's SHA-256 (valid until exp), so a token it has seen costs a hash and
a lookup; HAProxy verifies the HMAC every time. That is part of what is
measured: the same tokens, presented again, as real clients do.

Targets are interleaved round by round; medians of requests/s, p50, p99 and
CPU microseconds per request of each process tree, with ratios. Loopback
only; every run is bounded by --duration.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Bench, bench_main, free_port, http_status, wait_http, wait_ready  # noqa: E402

SECRET = "bench-hs256-shared-secret-0123456789"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(claims, secret=SECRET):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(signature)}"


def jwt_clients_yaml(clients):
    """Portcullis clients with one HS256 profile each, `<id>-jwt`, under the
    never-hit policy `roomy`; the secret comes from $BENCH_JWT_SECRET."""
    return "\n".join(f"""  - id: {c}
    collections: [bench]
    policy: roomy
    profiles:
      - id: {c}-jwt
        auth: {{ type: jwt, secret: "$BENCH_JWT_SECRET" }}""" for c, _ in clients)


class JwtBench(Bench):
    def __init__(self, args):
        super().__init__(args)
        now = int(time.time())
        # Long enough to outlive the run; same tokens for both gateways.
        self.clients = [(c, hs256({"sub": c, "iat": now, "exp": now + 3600})) for c, _ in self.clients]
        self.profile_suffix = "-jwt"
        self.ports["haproxy-jwt"] = free_port()
        self.ports["portcullis-jwt"] = free_port()
        self.ports["portcullis-jwt-base"] = free_port()

    def haproxy(self):
        conf = self.write("haproxy.cfg", f"""
global
  nbthread {os.cpu_count()}
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend jwt
  bind 127.0.0.1:{self.ports['haproxy-jwt']}
  unique-id-format %{{+X}}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
  stick-table type string len 64 size 100k expire 60s store http_req_rate(1s)
  http-request set-var(txn.bearer) http_auth_bearer
  http-request deny deny_status 401 unless {{ var(txn.bearer) -m found }}
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request deny deny_status 401 unless {{ var(txn.alg) -m str HS256 }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_verify(txn.alg,"{SECRET}") -m int 1 }}
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request set-var(txn.now) date
  http-request deny deny_status 401 if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}
  http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query('$.sub')
  http-request set-var(txn.cid) req.hdr(X-Client-ID)
  http-request deny deny_status 401 unless {{ var(txn.sub),strcmp(txn.cid) eq 0 }}
  http-request track-sc0 var(txn.sub)
  http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 1000000 }}
  http-request del-header Authorization
  http-request set-header X-Consumer-Client-ID %[var(txn.sub)]
  http-request set-header X-Request-ID %[unique-id]
  default_backend upstream
backend upstream
  http-reuse always
  server up 127.0.0.1:{self.ports['upstream']} maxconn 256
""")
        return self.start("haproxy-jwt", ["haproxy", "-db", "-f", conf])

    def portcullis_jwt(self, name="portcullis-jwt", admin="admin", bin_dir=None):
        config = self.portcullis_config(name, jwt_clients_yaml(self.clients), admin=admin)
        return self.start_portcullis(name, config, env=dict(os.environ, BENCH_JWT_SECRET=SECRET), bin_dir=bin_dir)

    def jwt_targets(self):
        return ["portcullis-jwt"] + (["portcullis-jwt-base"] if self.args.baseline else [])

    def run(self):
        self.targets = {}
        self.start_upstream()
        self.targets["haproxy-jwt"] = self.haproxy()
        self.portcullis_jwt()
        if self.args.baseline:
            self.portcullis_jwt("portcullis-jwt-base", admin="admin-base", bin_dir=self.args.baseline)
        wait_http(self.ports["upstream"])
        wait_http(self.ports["haproxy-jwt"])
        wait_ready(self.ports["admin"])
        if self.args.baseline:
            wait_ready(self.ports["admin-base"])
        self.check_same_job()
        script = self.lua()
        results = self.interleave(["upstream", "haproxy-jwt"] + self.jwt_targets(), script)
        results["portcullis"] = results.pop("portcullis-jwt")
        if "portcullis-jwt-base" in results:
            results["portcullis-base"] = results.pop("portcullis-jwt-base")
        self.table(results)

    def check_same_job(self):
        """Both accept a good token and refuse a bad signature, an expired
        token and a token of another client."""
        c, t = self.clients[7]
        other = self.clients[8][0]
        now = int(time.time())
        base = {"X-Client-ID": c, "X-Profile-ID": f"{c}-jwt"}
        cases = [
            ("good", dict(base, Authorization=f"Bearer {t}"), 200),
            ("bad signature", dict(base, Authorization=f"Bearer {hs256({'sub': c, 'exp': now + 60}, 'wrong')}"), 401),
            ("expired", dict(base, Authorization=f"Bearer {hs256({'sub': c, 'exp': now - 3600})}"), 401),
            ("other client's token", dict(base, **{"X-Client-ID": other, "X-Profile-ID": f"{c}-jwt",
                                                   "Authorization": f"Bearer {t}"}), None),
        ]
        for name in ["haproxy-jwt"] + self.jwt_targets():
            for label, headers, want in cases:
                got = http_status(self.ports[name], "/x", headers)
                ok = got == want if want else got in (401, 403)
                if not ok:
                    raise RuntimeError(f"{name}: {label} -> {got}, want {want or '401/403'}; not doing the same job")


def main():
    bench_main(JwtBench, __doc__, 3, ["nginx", "haproxy", "wrk"])


if __name__ == "__main__":
    main()
