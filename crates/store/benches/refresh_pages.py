#!/usr/bin/env python3
"""Log frames (pages) a batch of refresh-token rotations writes, on the store's own schema.

Applies crates/store/migrations/sqlite/*.sql to a scratch database, makes 128 grants,
rotates their tokens 60,000 times to grow the tables, then writes 200 more batches of
12 rotations with the statements the group commit uses (spend, insert, records, head)
and counts the frames they add to the write-ahead log. Variants leave a part out or
change the keys, to see what each costs:

    python3 crates/store/benches/refresh_pages.py [no-spend] [no-insert] [no-records]
        [no-grant-index] [time-ordered]

Benchmark use only: the records here are dummies, nothing is hash-chained.
"""
import glob
import os
import random
import sqlite3
import struct
import sys
import tempfile
import time

VARIANT = set(sys.argv[1:])
GRANTS, BATCH, GROW, MEASURE = 128, 12, 5000, 200
HERE = os.path.dirname(os.path.abspath(__file__))
DAY_US = 86_400 * 10**6
BODY = ('{"v":1,"type":"oidc.token.refreshed","outcome":"success","actor":"client:abcdefghijklmnopqrstuv",'
        '"client_ip":"127.0.0.1","correlation_id":"01JABCDEFGHJKMNPQRSTVWXYZ0","details":{"client_id":'
        '"abcdefghijklmnopqrstuv","grant_id":"01JABCDEFGHJKMNPQRSTVWXYZ0"},"node":"n1","prev":"%s","seq":%d,"ts_us":%d}')


def key():
    if "time-ordered" in VARIANT:
        return struct.pack(">Q", int(time.time() * 1e6))[2:] + os.urandom(26)
    return os.urandom(32)


def main():
    path = os.path.join(tempfile.mkdtemp(), "pages.db")
    con = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "wal_autocheckpoint=0", "temp_store=memory"):
        con.execute("PRAGMA " + pragma)
    for f in sorted(glob.glob(os.path.join(HERE, "..", "migrations", "sqlite", "*.sql"))):
        con.executescript(open(f).read())
    if "no-grant-index" in VARIANT:
        con.execute("DROP INDEX oidc_refresh_tokens_grant_id")
    if con.execute("SELECT count(*) FROM audit_head").fetchone()[0] == 0:
        con.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32))")
    con.execute("INSERT INTO oidc_clients (id, name, redirect_uris, post_logout_redirect_uris, secret_digest, scopes, "
                "first_party, access_token_ttl_secs, refresh_token_ttl_secs, created_at_us, signing_alg) "
                "VALUES ('c1', 'bench', '[]', '[]', zeroblob(32), '[]', 1, 300, 86400, 0, 'ES256')")
    now = 10**15
    live = {}
    for g in range(GRANTS):
        gid = "01J%023d" % g
        con.execute("INSERT INTO oidc_grants (id, client_id, user_id, session_id, scopes, acr, amr, auth_time_us, "
                    "correlation_id, created_at_us) VALUES (?, 'c1', 'u1', 's1', '[\"openid\"]', 'aal2', "
                    "'[\"pwd\",\"otp\"]', 0, 'corr', 0)", (gid,))
        live[g] = key()
        con.execute("INSERT INTO oidc_refresh_tokens VALUES (?, ?, ?, ?, NULL)", (live[g], gid, now, now + DAY_US))
    seq = 0

    def batch(skip):
        nonlocal seq, now
        grants = random.sample(range(GRANTS), BATCH)
        now += 2000
        con.execute("BEGIN IMMEDIATE")
        if "no-spend" not in skip:
            params = [v for g in grants for v in (live[g], now)]
            con.execute(
                "WITH presented(digest, now_us) AS (VALUES " + ",".join(["(?,?)"] * BATCH) + ") "
                "UPDATE oidc_refresh_tokens SET used_at_us = (SELECT now_us FROM presented p "
                "WHERE p.digest = oidc_refresh_tokens.digest) WHERE used_at_us IS NULL "
                "AND digest IN (SELECT digest FROM presented) AND expires_at_us > (SELECT now_us FROM presented p "
                "WHERE p.digest = oidc_refresh_tokens.digest) AND EXISTS (SELECT 1 FROM oidc_grants g "
                "WHERE g.id = oidc_refresh_tokens.grant_id AND g.revoked_at_us IS NULL)", params)
        params = []
        for g in grants:
            live[g] = key()
            params += [live[g], "01J%023d" % g, now, now + DAY_US, None]
        if "no-insert" not in skip:
            con.execute("INSERT INTO oidc_refresh_tokens (digest, grant_id, created_at_us, expires_at_us, used_at_us) "
                        "VALUES " + ",".join(["(?,?,?,?,?)"] * BATCH), params)
        if "no-records" not in skip:
            params = []
            for _ in grants:
                seq += 1
                params += [seq, now, "oidc.token.refreshed", BODY % ("ab" * 32, seq, now), os.urandom(32)]
            con.execute("INSERT INTO audit_log (seq, ts_us, event_type, body, hash) VALUES "
                        + ",".join(["(?,?,?,?,?)"] * BATCH), params)
        con.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, os.urandom(32)))
        con.execute("COMMIT")

    def frames():
        return (os.path.getsize(path + "-wal") - 32) // (4096 + 24)

    for _ in range(GROW):
        batch(set())
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = frames()
    for _ in range(MEASURE):
        batch(VARIANT)
    per_rotation = (frames() - before) / MEASURE / BATCH
    print(f"{' '.join(sorted(VARIANT)) or 'as written'}: {per_rotation:.2f} log frames per rotation")


if __name__ == "__main__":
    main()
