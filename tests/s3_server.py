"""A real S3-speaking HTTP server on 127.0.0.1 for the artifact tests: moto's server mode.

`moto_server` runs as its own process on a free port; the code under test reaches it over
HTTP through boto3 and django-storages exactly as it would reach AWS (only the endpoint URL
differs), and the tests look at the bucket with a plain boto3 client.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

REGION = "us-east-1"
# moto accepts any key; these are test values, never real credentials.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class S3Server:
    """`moto_server -H 127.0.0.1 -p <free port>`, started and stopped by the fixture."""

    def __init__(self, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_until_up(log)

    def _wait_until_up(self, log: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"moto_server exited: {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"moto_server did not answer on {self.url} in 30 s")

    def client(self):
        """A plain boto3 S3 client on this server, to look at what the code stored."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def new_bucket(self) -> str:
        name = f"artifacts-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def environment(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The variables a deployment sets to keep its artifacts in this bucket."""
        return {
            "ARTIFACTS_S3_BUCKET": bucket,
            "ARTIFACTS_S3_PREFIX": prefix,
            "AWS_S3_ENDPOINT_URL": self.url,
            "AWS_S3_REGION_NAME": REGION,
            **CREDENTIALS,
        }

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return sorted(entry["Key"] for entry in listed.get("Contents", []))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
