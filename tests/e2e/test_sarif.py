"""`--format sarif` for `-t` and `truehop check`: a SARIF 2.1.0 log that GitHub code
scanning accepts (the structure its upload checks: version, one run, the tool's rules, results
with a rule id that the driver lists, a level, a message, a file and a 1-based start line)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness import run_truehop

from truehop.lint.report import Finding, sarif_log, sarif_uri

LEVELS = {"error", "warning", "note", "none"}

FINDINGS_CONF = """upstream app { server 127.0.0.1:3000; }
server {
    listen 127.0.0.1:8080;
    location / {
        proxy_pass http://app;
        proxy_set_header Host $http_host;
        proxy_set_header X-Real-IP $remote_addr;
    }
}
"""


def check_structure(log: dict[str, Any]) -> list[dict[str, Any]]:
    """Assert a SARIF 2.1.0 log's required structure; return the results of its run."""
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    assert isinstance(log["runs"], list) and len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "truehop" and isinstance(driver["version"], str)
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids))
    for r in driver["rules"]:
        assert isinstance(r["shortDescription"]["text"], str) and r["shortDescription"]["text"]
    for res in run["results"]:
        assert res["ruleId"] in ids
        assert ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in LEVELS
        assert isinstance(res["message"]["text"], str) and res["message"]["text"]
        (loc,) = res["locations"]
        phys = loc["physicalLocation"]
        assert isinstance(phys["artifactLocation"]["uri"], str)
        if "region" in phys:
            assert isinstance(phys["region"]["startLine"], int)
            assert phys["region"]["startLine"] >= 1
    return list(run["results"])


def test_sarif_log_of_findings(tmp_path: Path) -> None:
    fs = [Finding("http-host", "warn", str(tmp_path / "a.conf"), 6, "m", "fix it"),
          Finding("tls-implicit-default", "note", "/elsewhere/b.conf", 3, "n"),
          Finding("config-error", "error", str(tmp_path / "a.conf"), 0, "bad")]
    log = sarif_log(fs, {"http-host": "Host from $http_host.", "tls-implicit-default": "x"},
                    "0.1.0", base=str(tmp_path))
    results = check_structure(log)
    assert [(r["ruleId"], r["level"]) for r in results] == [
        ("http-host", "warning"), ("tls-implicit-default", "note"), ("config-error", "error")]
    first = results[0]["locations"][0]["physicalLocation"]
    assert first == {"artifactLocation": {"uri": "a.conf"}, "region": {"startLine": 6}}
    assert results[0]["message"]["text"] == "m Fix: fix it"
    assert results[1]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "file:///elsewhere/b.conf"
    assert "region" not in results[2]["locations"][0]["physicalLocation"]
    assert sarif_uri(str(tmp_path / "d" / "c.conf"), str(tmp_path)) == "d/c.conf"


def test_t_format_sarif(tmp_path: Path) -> None:
    conf = tmp_path / "site.conf"
    conf.write_text(FINDINGS_CONF)
    out = run_truehop("-t", "-c", str(conf), "-p", f"{tmp_path}/", "--format", "sarif",
                      cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    results = check_structure(json.loads(out.stdout))
    got = {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results}
    assert ("http-host", "site.conf", 6) in got
    assert ("missing-host", "site.conf", 5) not in got      # Host is set
    # every rule of the lint is described, so code scanning can show its help
    rules = json.loads(out.stdout)["runs"][0]["tool"]["driver"]["rules"]
    assert {"http-host", "keepalive-defeated", "upstream-resolved-once"} <= {r["id"] for r in rules}


def test_check_format_sarif_config_error(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("server {\n    listen 127.0.0.1:8080;\n    proxy_buffering maybe;\n}\n")
    out = run_truehop("check", str(conf), "--format", "sarif", cwd=tmp_path)
    assert out.returncode == 1
    (res,) = check_structure(json.loads(out.stdout))
    assert res["ruleId"] == "config-error" and res["level"] == "error"
    assert res["locations"][0]["physicalLocation"]["region"]["startLine"] == 3
    assert os.path.basename(
        res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) == "bad.conf"
