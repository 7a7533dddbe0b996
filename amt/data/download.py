"""Fetching what amt downloads (mini-MusicNet, the piano samples): streamed to a file with a progress
bar, refused when the server sends a web page or fewer bytes than it announced, and every network
failure reduced to one readable reason."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path

from rich.progress import Progress

DOWNLOAD_TIMEOUT_S = 60
DOWNLOAD_CHUNK_BYTES = 1 << 20
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError, ValueError)
"""What a download may raise: catch these and report :func:`reason`."""


class IncompleteDownload(ValueError):
    """The server answered, but not with the whole file."""


def reason(error: Exception) -> str:
    """The useful part of a network error (urllib wraps socket errors as ``<urlopen error ...>``)."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return str(error.reason)
    return str(error) or type(error).__name__


def open_url(url: str, purpose: str) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": f"amt ({purpose})"})
    return urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S)


def fetch(url: str, target: Path, progress: Progress, purpose: str) -> None:
    """Stream ``url`` into ``target``; raise :class:`IncompleteDownload` for a web page or fewer bytes
    than the server announced."""
    with open_url(url, purpose) as response:
        if response.headers.get_content_type() == "text/html":
            raise IncompleteDownload(f"the server sent a web page instead of {target.name}")
        announced = response.headers.get("Content-Length")
        task = progress.add_task(target.name, total=int(announced) if announced else None)
        received = 0
        with open(target, "wb") as handle:
            while chunk := response.read(DOWNLOAD_CHUNK_BYTES):
                handle.write(chunk)
                received += len(chunk)
                progress.advance(task, len(chunk))
    if announced is not None and received != int(announced):
        raise IncompleteDownload(f"received {received:,} of {int(announced):,} bytes")
