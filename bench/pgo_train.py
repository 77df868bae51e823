#!/usr/bin/env python3
"""The training load for profile-guided optimisation (bench/pgo-train).

Runs instrumented Portcullis binaries (PORTCULLIS_PGO=generate
scripts/release-build) under a mixed load, then stops them so that the
router and every worker write their execution counts to
$LLVM_PROFILE_FILE. The mix is meant to look like a production fleet, not
like bench/run.py's measured load, so that the profile does not fit one
benchmark:

  65%  token auth GETs, 1000 clients rotated (the common case)
  13%  HS256 JWT GETs, 200 clients, tokens re-presented (the cache path)
   8%  POSTs with a 2 KiB body, Content-Length framing
   4%  a client over its 5/s rate limit (429, rate-limit headers)
   4%  a wrong token (401)
   4%  an unknown client (401)
   2%  a profile of another client (403)

Loopback only; bounded by --duration.
"""
import glob
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jwt import SECRET, hs256, jwt_clients_yaml  # noqa: E402
from run import LUA_ROTATE_AND_REPORT, Bench, bench_main, wait_http, wait_ready  # noqa: E402


class Train(Bench):
    def run(self):
        raw = os.environ.get("LLVM_PROFILE_FILE", "")
        if "%p" not in raw:
            sys.exit("set LLVM_PROFILE_FILE to a path with %p (one file per process)")
        now = int(time.time())
        self.jwt_clients = [(f"jwt-{i:04d}", hs256({"sub": f"jwt-{i:04d}", "iat": now, "exp": now + 3600})) for i in range(200)]
        self.targets = {}
        self.start_upstream()
        config = self.portcullis_config("portcullis", self.config_clients())
        config_text = open(config).read().replace(
            "policies:\n", "policies:\n  - id: tight\n    rate_limits: [ { limit: 5, per: second } ]\n", 1)
        with open(config, "w") as f:
            f.write(config_text)
        self.start_portcullis("portcullis", config, env=dict(os.environ, BENCH_JWT_SECRET=SECRET))
        wait_http(self.ports["upstream"])
        wait_ready(self.ports["admin"])
        script = self.mixed_lua()
        result = self.run_wrk("portcullis", self.args.duration, script)
        print(f"training load: {result['rps']:.0f} req/s for {self.args.duration} s, "
              f"{result['non2xx']} non-2xx (the refusals are part of the mix)")
        self.stop()
        written = glob.glob(raw.replace("%p", "*"))
        if len(written) < 2:
            sys.exit(f"expected profiles from the router and its workers, found {written}")
        print(f"{len(written)} profiles written")

    def config_clients(self):
        jwt = jwt_clients_yaml(self.jwt_clients)
        tight_token = self.clients[0][1]
        tight = f"""  - id: tight-client
    collections: [bench]
    policy: tight
    profiles:
      - id: tight-client-token
        auth: {{ type: token, token_sha256: "{hashlib.sha256(tight_token.encode()).hexdigest()}" }}"""
        return "\n".join([self.clients_yaml(), jwt, tight])

    def mixed_lua(self):
        tight_token = self.clients[0][1]
        rows = []
        for i, (c, t) in enumerate(self.clients):
            rows.append(f'{{"GET", "/items/{i}", "{c}", "{c}-token", "Bearer {t}"}}')
            if i % 5 == 0:
                jc, jt = self.jwt_clients[(i // 5) % len(self.jwt_clients)]
                rows.append(f'{{"GET", "/orders/{i}", "{jc}", "{jc}-jwt", "Bearer {jt}"}}')
            if i % 8 == 0:
                rows.append(f'{{"POST", "/items", "{c}", "{c}-token", "Bearer {t}", true}}')
            if i % 16 == 1:
                rows.append(f'{{"GET", "/items/{i}", "tight-client", "tight-client-token", "Bearer {tight_token}"}}')
            if i % 16 == 2:
                rows.append(f'{{"GET", "/items/{i}", "{c}", "{c}-token", "Bearer pcl_wrong_{i}"}}')
            if i % 16 == 3:
                rows.append(f'{{"GET", "/items/{i}", "nobody-{i}", "nobody-{i}-token", "Bearer {t}"}}')
            if i % 32 == 4:
                other = self.clients[(i + 1) % len(self.clients)][0]
                rows.append(f'{{"GET", "/items/{i}", "{c}", "{other}-token", "Bearer {t}"}}')
        return self.write("train.lua", """
local rows = {
%s
}
local body = string.rep("x", 2048)
local requests = {}
for k, v in ipairs(rows) do
  local headers = { ["Host"] = "bench", ["X-Client-ID"] = v[3], ["X-Profile-ID"] = v[4], ["Authorization"] = v[5] }
  if v[6] then
    headers["Content-Type"] = "application/octet-stream"
    requests[k] = wrk.format(v[1], v[2], headers, body)
  else
    requests[k] = wrk.format(v[1], v[2], headers)
  end
end
""" % ",\n".join(rows) + LUA_ROTATE_AND_REPORT)


def main():
    bench_main(Train, __doc__, 1, ["nginx", "wrk"])


if __name__ == "__main__":
    main()
