import json, subprocess, sys, time, signal, os
from conftest import base_env
def test_watch(pg_uri, run_cli, fake, tmp_path):
    for outbox in (pg_uri, str(tmp_path/"o.sqlite3")):
        env = base_env(tmp_path, fake.url); env["IEVENTS_OUTBOX"] = outbox
        p = subprocess.Popen([sys.executable, "-m", "intercom_events_cli", "flush", "--watch", "-v", "--metrics-port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.5)
        t0=time.time()
        r = run_cli("send","signup","--user-id",f"u{outbox[-3:]}","--queue", env={"IEVENTS_OUTBOX": outbox}); print(r)
        while len(fake.events_posted()) < (1 if outbox==pg_uri else 2): time.sleep(0.02)
        print("latency", time.time()-t0)
        r = run_cli("outbox","status","--format","prometheus", env={"IEVENTS_OUTBOX": outbox}); print(r.stdout)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
        print(p.returncode, out.decode(), err.decode())
        assert p.returncode == 0
    assert 0
