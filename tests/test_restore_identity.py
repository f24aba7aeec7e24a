"""#22 item 6: `python -m infra restore` reads prod's declared buckets as the `pocketbase-restore` account, through
Cloud Storage's own API with the operator's application default credentials, never with the writers' HMAC key
(which no stack output holds any more). The real Litestream (0.5.17) is run: its `gs` client builds a Cloud
Storage client from the application default credentials (github.com/benbjohnson/litestream gs/replica_client.go,
`storage.NewClient`), so credentials that cannot be loaded fail there, naming the bucket, before any request."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.ops import restore


def test_prod_restores_from_its_replica_bucket_with_application_default_credentials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-credentials.json"))
    monkeypatch.setenv("PB_ENCRYPTION_KEY", "read-from-secret-manager")  # what the command asks for first

    code = restore.main("prod", None, tmp_path / "restored", None)

    err = capsys.readouterr().err
    assert code == 1
    assert "failed to create GCS client (bucket: acme-commerce-prod-pocketbase-replica)" in err, err
    assert "GOOGLE_APPLICATION_CREDENTIALS" in err
