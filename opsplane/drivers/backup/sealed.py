"""Sealed archives: a directory tree kept as compressed, encrypted objects with a SHA-256 manifest, in
every repository of a backup (a directory or a path in an S3 bucket).

This is how pg_dump's directory output is kept (decision 0026): restic's content-defined chunking,
per-command key derivation and deduplication cost about twice the dump's own time on a 1 GB database,
and a dump gains little from deduplication. A sealed archive is one pass over the data:

- Each file is read in chunks of 4 MiB. A chunk is compressed on its own (one zstd frame, level 3)
  and encrypted with AES-256-GCM. The nonce is the object's random 8 bytes followed by the chunk's
  number, and the authenticated data names the backup, the object, the chunk's number and whether it
  is the last one. A chunk cannot be changed, moved, dropped or cut off unnoticed.
- The key is derived per backup from the repository's passphrase (scrypt, a fresh salt each time). A
  key check in the manifest tells a wrong passphrase from a damaged object.
- The manifest (`manifest.json`, plain JSON, no data) lists each file: its path and size, and the
  object that holds it, with its number of chunks, its size and its SHA-256. The repository can thus
  be checked without the key. A restore checks each object's SHA-256 and each chunk's tag, which
  proves the chunk's content, place and number (a SHA-256 of the plain files would add a pass over
  every byte and prove nothing the tags do not). The SHA-256 of the manifest is the backup's
  checksum.
- The manifest is written last: a backup is in a repository once its manifest is. In a directory the
  archive is written under `.partial-LABEL` and renamed when complete. Whatever an interrupted backup
  left is removed by the next one, once it is a day old.

Chunks are compressed and encrypted by `jobs` threads (zstd and OpenSSL release the GIL); the file is
read and its sealed chunks written in order by the calling thread, and hashed on a thread of its own.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import secrets
import shutil
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from pathlib import Path
from typing import IO, Any

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from opsplane.drivers.backup.base import (
    BackupEngineError,
    Progress,
    Repository,
    S3Location,
    StoredCopy,
    no_progress,
    redact,
)

FORMAT = "opsplane-sealed/1"
MANIFEST = "manifest.json"
CHUNK = 4 * 1024 * 1024
LEVEL = 3
MAGIC = b"OPSSEAL1"
PARTIAL = ".partial-"
# scrypt's cost: about 60 ms and 16 MiB here, once per backup and repository opened
KDF = {"name": "scrypt", "n": 2**14, "r": 8, "p": 1}
_KEY_CHECK = b"opsplane sealed archive"
_LENGTH = struct.Struct(">I")
_UNFINISHED_AGE = timedelta(days=1)


@dataclass(frozen=True)
class SealedFile:
    """One file of an archive: where it was, its size, and the object holding it (its chunks, its
    size and SHA-256 as stored)."""

    path: str
    object: str
    size: int
    chunks: int
    stored: int
    stored_sha256: str


@dataclass(frozen=True)
class Saved:
    """What a save produced: a copy per repository, the data's size and its checksum (the SHA-256 of
    the archive's manifest, which names every object by its SHA-256)."""

    copies: tuple[StoredCopy, ...]
    size_bytes: int
    checksum: str


class DirectoryPlace:
    """Archives under a directory: `LABEL/manifest.json` and `LABEL/data/NNNNN`."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def labels(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {entry.name for entry in self.root.iterdir()
                if not entry.name.startswith(".") and (entry / MANIFEST).is_file()}

    def read(self, label: str, name: str) -> bytes:
        return (self.root / label / name).read_bytes()

    def open(self, label: str, name: str) -> IO[bytes]:
        return open(self.root / label / name, "rb")  # noqa: SIM115 - the caller closes it

    def sizes(self, label: str) -> dict[str, int]:
        """The archive's objects and their sizes."""
        data = self.root / label / "data"
        return {path.name: path.stat().st_size for path in data.iterdir()} if data.is_dir() else {}

    def staging(self, label: str) -> Path:
        """Where an archive of this repository is written before it is complete."""
        return self.root / f"{PARTIAL}{label}"

    def publish(self, label: str, staged: Path, progress: Callable[[float], None]) -> None:
        """Make the complete archive `staged` this repository's `label`: renamed when it was staged
        here, otherwise copied in, the manifest last."""
        final = self.root / label
        if staged == self.staging(label):
            staged.rename(final)
            progress(1.0)
            return
        partial = self.staging(label)
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "data").mkdir(parents=True)
        names = sorted(p.name for p in (staged / "data").iterdir())
        for index, name in enumerate(names, start=1):
            shutil.copyfile(staged / "data" / name, partial / "data" / name)
            progress(index / (len(names) + 1))
        shutil.copyfile(staged / MANIFEST, partial / MANIFEST)
        _sync_dir(partial)
        partial.rename(final)
        progress(1.0)

    def remove(self, label: str) -> None:
        path = self.root / label
        if (path / MANIFEST).is_file():
            (path / MANIFEST).unlink()  # no longer held, whatever stops the rest
        shutil.rmtree(path, ignore_errors=True)

    def sweep(self, older_than: timedelta) -> list[str]:
        if not self.root.is_dir():
            return []
        cutoff = datetime.now(UTC).timestamp() - older_than.total_seconds()
        removed = []
        for entry in self.root.iterdir():
            if entry.name.startswith(PARTIAL) and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name[len(PARTIAL):])
        return removed


class BucketPlace:
    """Archives under a prefix of an S3 bucket: `PREFIX/LABEL/manifest.json`, `PREFIX/LABEL/data/NNNNN`."""

    def __init__(self, name: str, location: S3Location, prefix: str, *, secrets_: Sequence[str]) -> None:
        self.name = name
        self.location = location
        self.prefix = prefix.strip("/")
        self._secrets = secrets_

    @cached_property
    def client(self) -> Any:
        """A boto3 client for the bucket, made when first used (boto3 clients are thread-safe)."""
        import boto3
        from botocore.config import Config

        loc = self.location
        return boto3.client(
            "s3", endpoint_url=loc.url, region_name=loc.region, aws_access_key_id=loc.access_key,
            aws_secret_access_key=loc.secret_key, verify=(loc.ca_file or True) if loc.verify_tls else False,
            config=Config(s3={"addressing_style": "path" if loc.uri_style == "path" else "virtual"},
                          retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=15,
                          read_timeout=120))

    def _key(self, label: str, name: str = "") -> str:
        return "/".join(part for part in (self.prefix, label, name) if part)

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except (BotoCoreError, ClientError) as exc:
            raise BackupEngineError(redact(f"repository {self.name!r} (s3://{self.location.bucket}/"
                                           f"{self.prefix}): {what}: {exc}", self._secrets)) from None

    def prepare(self) -> None:
        self._call("the bucket cannot be reached",
                   lambda: self.client.head_bucket(Bucket=self.location.bucket))

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call("listing the archives",
                           lambda: list(paginator.paginate(Bucket=self.location.bucket, Prefix=prefix)))
        for page in pages:
            yield from page.get("Contents", [])

    def labels(self) -> set[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        found = set()
        for item in self._objects(base):
            rest = item["Key"][len(base):]
            label, _, name = rest.partition("/")
            if name == MANIFEST:
                found.add(label)
        return found

    def read(self, label: str, name: str) -> bytes:
        with self.open(label, name) as body:
            return body.read()

    def open(self, label: str, name: str) -> IO[bytes]:
        answer = self._call(f"reading {label}/{name}", lambda: self.client.get_object(
            Bucket=self.location.bucket, Key=self._key(label, name)))
        body: IO[bytes] = answer["Body"]
        return body

    def sizes(self, label: str) -> dict[str, int]:
        """The archive's objects and their sizes, from one listing."""
        prefix = self._key(label, "data") + "/"
        return {item["Key"][len(prefix):]: int(item["Size"]) for item in self._objects(prefix)}

    def publish(self, label: str, staged: Path, progress: Callable[[float], None]) -> None:
        names = sorted(p.name for p in (staged / "data").iterdir())
        for index, name in enumerate([*(f"data/{n}" for n in names), MANIFEST], start=1):  # manifest last
            self._call(f"writing {label}/{name}", partial(
                self.client.upload_file, str(staged / name), self.location.bucket, self._key(label, name)))
            progress(index / (len(names) + 1))

    def remove(self, label: str) -> None:
        self._call(f"removing {label}", lambda: self.client.delete_object(
            Bucket=self.location.bucket, Key=self._key(label, MANIFEST)))
        keys = [item["Key"] for item in self._objects(self._key(label) + "/")]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            self._call(f"removing {label}", partial(self.client.delete_objects, Bucket=self.location.bucket,
                                                    Delete={"Objects": batch, "Quiet": True}))

    def sweep(self, older_than: timedelta) -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        newest: dict[str, datetime] = {}
        complete = set()
        for item in self._objects(base):
            label, _, name = item["Key"][len(base):].partition("/")
            if name == MANIFEST:
                complete.add(label)
            newest[label] = max(newest.get(label, item["LastModified"]), item["LastModified"])
        cutoff = datetime.now(UTC) - older_than
        stale = [label for label, at in newest.items() if label not in complete and at < cutoff]
        for label in stale:
            self.remove(label)
        return stale


def place_of(repository: Repository) -> DirectoryPlace | BucketPlace:
    """Where `repository` keeps sealed archives."""
    if repository.s3 is None:
        return DirectoryPlace(repository.name, Path(repository.path))
    return BucketPlace(repository.name, repository.s3, repository.path,
                       secrets_=[repository.cipher_pass, repository.s3.secret_key])


class SealedCopies:
    """Sealed archives of a directory tree in every repository of a backup, directories first.

    `jobs` threads compress and encrypt; `work_dir` stages an archive when no repository is a
    directory (the system's temporary directory when None)."""

    def __init__(self, repositories: Sequence[Repository], *, jobs: int = 2,
                 work_dir: str | Path | None = None) -> None:
        if not repositories:
            raise BackupEngineError("a backup needs at least one repository to keep it in")
        names = [repository.name for repository in repositories]
        if len(set(names)) != len(names):
            raise BackupEngineError(f"repository names must be distinct: {names}")
        ordered = sorted(repositories, key=lambda repository: repository.kind != "posix")
        self.repositories = {repository.name: repository for repository in ordered}
        self.places = {repository.name: place_of(repository) for repository in ordered}
        self.jobs = max(1, jobs)
        self.work_dir = Path(work_dir) if work_dir is not None else None

    def place(self, repository: str) -> DirectoryPlace | BucketPlace:
        try:
            return self.places[repository]
        except KeyError:
            known = ", ".join(self.places)
            raise BackupEngineError(f"there is no repository {repository!r} here (known: {known})") from None

    # --- what an engine asks ----------------------------------------------------------------------

    def prepare(self, repository: str) -> None:
        self.place(repository).prepare()

    def held(self, repository: str) -> set[str]:
        return self.place(repository).labels()

    def remove(self, repository: str, label: str) -> None:
        self.place(repository).remove(label)

    def check(self, repository: str, *, read_data: str = "newest") -> list[str]:
        """Every archive's objects against its manifest, no key needed: each must exist with its
        size, and those read back (`read_data`: "all", "newest" archive, or "none") must match their
        SHA-256. The problems found."""
        place = self.place(repository)
        problems = []
        labels = sorted(place.labels())
        for label in labels:
            try:
                files = _files(json.loads(place.read(label, MANIFEST)))
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"archive {label}: its manifest cannot be read ({exc})")
                continue
            read = read_data == "all" or (read_data == "newest" and label == labels[-1])
            sizes = place.sizes(label)
            for entry in files:
                where = f"archive {label}: {entry.path} (object {entry.object})"
                size = sizes.get(entry.object)
                if size is None:
                    problems.append(f"{where} is missing")
                elif size != entry.stored:
                    problems.append(f"{where} is {size} bytes, the manifest says {entry.stored}: damaged")
                elif read and _object_sha256(place, label, entry.object) != entry.stored_sha256:
                    problems.append(f"{where} does not match its SHA-256: it was changed or damaged")
        return problems

    # --- saving -----------------------------------------------------------------------------------

    def save_tree(self, root: str | Path, *, progress: Progress = no_progress) -> Saved:
        """Seal every file under `root` into every repository: the copies, one per repository
        (labelled alike), the data's size and checksum.

        `progress` hears ("backup", fraction) while sealing and ("copy to NAME", fraction) while
        each further repository receives the archive."""
        base = Path(root)
        files = sorted(path for path in base.rglob("*") if path.is_file() and not path.is_symlink())
        label = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
        places = list(self.places.values())
        first = places[0]
        passphrase = self.repositories[first.name].cipher_pass
        for place in places:
            if self.repositories[place.name].cipher_pass != passphrase:
                raise BackupEngineError(f"repository {place.name!r} has a key of its own: a sealed "
                                        "archive is written with one key to every repository")
            place.prepare()
            place.sweep(_UNFINISHED_AGE)
        staged = (first.staging(label) if isinstance(first, DirectoryPlace)
                  else Path(_mkdtemp(self.work_dir)) / label)
        try:
            entries = self._seal(base, files, staged, label, passphrase, progress)
            checksum = hashlib.sha256((staged / MANIFEST).read_bytes()).hexdigest()
            copies = []
            for index, place in enumerate(places):
                if index > 0:
                    progress(f"copy to {place.name}", 0.0)
                phase = "backup" if index == 0 else f"copy to {place.name}"
                place.publish(label, staged, partial(progress, phase))
                if index == 0 and isinstance(first, DirectoryPlace):
                    staged = first.root / label  # the others copy from the complete archive
                copies.append(StoredCopy(place.name, label, sum(entry.stored for entry in entries)))
        except BaseException:
            for place in places:
                _quietly(partial(place.remove, label))
            if isinstance(first, DirectoryPlace):
                shutil.rmtree(first.staging(label), ignore_errors=True)
            raise
        finally:
            if not isinstance(first, DirectoryPlace):
                shutil.rmtree(staged.parent, ignore_errors=True)
        return Saved(tuple(copies), sum(entry.size for entry in entries), checksum)

    def _seal(self, base: Path, files: list[Path], staged: Path, label: str, passphrase: str,
              progress: Progress) -> list[SealedFile]:
        shutil.rmtree(staged, ignore_errors=True)
        (staged / "data").mkdir(parents=True)
        salt = secrets.token_bytes(16)
        key = _derive(passphrase, salt, KDF)
        total = sum(path.stat().st_size for path in files) or 1
        done = [0]
        entries = []

        def advance(count: int) -> None:
            done[0] += count
            progress("backup", min(done[0] / total, 1.0))

        progress("backup", 0.0)
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="seal") as pool:
            sealer = _Sealer(key, label, pool, self.jobs)
            for number, path in enumerate(files):
                name = f"{number:05d}"
                entries.append(sealer.seal(path, path.relative_to(base).as_posix(), name,
                                           staged / "data" / name, advance))
        nonce = secrets.token_bytes(12)
        document = {
            "format": FORMAT, "label": label, "created": datetime.now(UTC).isoformat(),
            "kdf": {**KDF, "salt": salt.hex()},
            "key_check": (nonce + AESGCM(key).encrypt(nonce, _KEY_CHECK, label.encode())).hex(),
            "chunk_bytes": CHUNK, "compression": f"zstd-{LEVEL}", "cipher": "aes-256-gcm",
            "files": [entry.__dict__ for entry in entries],
        }
        (staged / MANIFEST).write_text(json.dumps(document, indent=1) + "\n")
        _sync_dir(staged / "data")
        return entries

    # --- restoring --------------------------------------------------------------------------------

    def restore(self, copy: StoredCopy, target_dir: str | Path) -> list[SealedFile]:
        """Write the archive `copy` names, from its repository, under `target_dir`, every object
        checked against its SHA-256 and every chunk against its tag; the files written.
        BackupEngineError names a wrong key, a missing or damaged object."""
        place = self.place(copy.repository)
        where = f"archive {copy.label} in repository {copy.repository!r}"
        try:
            document = json.loads(place.read(copy.label, MANIFEST))
            files = _files(document)
            kdf = document["kdf"]
            key = _derive(self.repositories[copy.repository].cipher_pass, bytes.fromhex(kdf["salt"]), kdf)
            check = bytes.fromhex(document["key_check"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackupEngineError(f"{where}: its manifest cannot be read ({exc})") from None
        try:
            AESGCM(key).decrypt(check[:12], check[12:], copy.label.encode())
        except InvalidTag:
            raise BackupEngineError(f"{where}: the repository's key does not open it") from None
        target = Path(target_dir)
        target.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="unseal") as pool:
            opener = _Opener(key, copy.label, pool, self.jobs)
            for entry in files:
                out = target / entry.path
                if not out.resolve().is_relative_to(target.resolve()):
                    raise BackupEngineError(f"{where}: {entry.path} lies outside the archive")
                out.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with place.open(copy.label, f"data/{entry.object}") as stream:
                        opener.open(stream, entry, out, where)
                except FileNotFoundError:
                    raise BackupEngineError(f"{where}: object {entry.object} ({entry.path}) is missing") \
                        from None
        return files


class _Chunks:
    """What sealing and opening share: the key, the archive's label, the pool that works on the
    chunks (at most `window` in flight) and each pool thread's own compressor and cipher."""

    def __init__(self, key: bytes, label: str, pool: ThreadPoolExecutor, jobs: int) -> None:
        self.key = key
        self.label = label
        self.pool = pool
        self.window = 2 * jobs
        self._local = threading.local()

    @staticmethod
    def settle_all(futures: Iterable[Future[Any]]) -> None:
        """After an error: cancel the chunks not started and wait for those running, so that no
        chunk touches a buffer or a file after it is given back."""
        waiting = list(futures)
        for future in waiting:
            future.cancel()
        for future in waiting:
            if not future.cancelled():
                future.exception()


class _Sealer(_Chunks):
    """Seals files one after the other: the calling thread reads each file into buffers it reuses
    (no fresh pages for every chunk) and writes the sealed chunks in order; the pool compresses and
    encrypts them."""

    def __init__(self, key: bytes, label: str, pool: ThreadPoolExecutor, jobs: int) -> None:
        super().__init__(key, label, pool, jobs)
        # the chunks in flight, the one being handed over and the one read ahead
        self._buffers = [bytearray(CHUNK) for _ in range(self.window + 2)]

    def _chunk(self, data: memoryview, nonce: bytes, aad: bytes) -> bytes:
        local = self._local
        if not hasattr(local, "compressor"):
            local.compressor = zstandard.ZstdCompressor(level=LEVEL)
            local.cipher = AESGCM(self.key)
        sealed: bytes = local.cipher.encrypt(nonce, local.compressor.compress(data), aad)
        return sealed

    def seal(self, source: Path, relative: str, name: str, out: Path, advance: Callable[[int], None]
             ) -> SealedFile:
        prefix = secrets.token_bytes(8)
        free = list(self._buffers)
        pending: deque[tuple[Future[bytes], bytearray, int]] = deque()
        size = written = 0

        def emit(sink: IO[bytes], stored: _Digest) -> None:
            nonlocal written
            future, buffer, count = pending.popleft()
            block = future.result()
            free.append(buffer)
            framed = _LENGTH.pack(len(block)) + block
            sink.write(framed)
            stored.update(framed)
            written += len(framed)
            advance(count)

        try:
            with _Digest() as stored, open(source, "rb", buffering=0) as stream, open(out, "wb") as sink:
                header = MAGIC + prefix
                sink.write(header)
                stored.update(header)
                written = len(header)
                current = free.pop()
                filled = _fill(stream, current)
                index = 0
                while True:
                    following = free.pop() if filled == CHUNK else None
                    ahead = _fill(stream, following) if following is not None else 0
                    last = ahead == 0
                    size += filled
                    nonce, aad = prefix + struct.pack(">I", index), _aad(self.label, name, index, last)
                    chunk = self.pool.submit(self._chunk, memoryview(current)[:filled], nonce, aad)
                    pending.append((chunk, current, filled))
                    if last:
                        if following is not None:
                            free.append(following)
                        break
                    while len(pending) >= self.window:
                        emit(sink, stored)
                    assert following is not None  # not the last chunk: one was read ahead
                    current, filled, index = following, ahead, index + 1
                while pending:
                    emit(sink, stored)
                sink.flush()
                os.fsync(sink.fileno())
                return SealedFile(relative, name, size, index + 1, written, stored.hexdigest())
        finally:
            self.settle_all(future for future, _, _ in pending)


def _fill(stream: io.RawIOBase, buffer: bytearray) -> int:
    """Read into `buffer` until it is full or the stream ends: how much was read."""
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer) and (count := stream.readinto(view[filled:])):
        filled += count
    return filled


class _Opener(_Chunks):
    """Opens sealed objects: each chunk is decrypted (its tag checked), decompressed into a buffer its
    thread keeps and written at its place in the file (every chunk but the last holds CHUNK bytes) on
    the pool, while the calling thread reads the object in order and checks its SHA-256."""

    def _chunk(self, block: bytes, nonce: bytes, aad: bytes, descriptor: int, offset: int) -> int:
        local = self._local
        if not hasattr(local, "decompressor"):
            local.decompressor = zstandard.ZstdDecompressor()
            local.cipher = AESGCM(self.key)
            local.buffer = memoryview(bytearray(CHUNK))  # reused: no fresh pages for every chunk
        buffer: memoryview = local.buffer
        filled = 0
        with local.decompressor.stream_reader(local.cipher.decrypt(nonce, block, aad)) as reader:
            while filled < CHUNK and (count := reader.readinto(buffer[filled:])):
                filled += count
            if filled == CHUNK and reader.read(1):
                raise zstandard.ZstdError("a chunk holds more than its size")
        view = buffer[:filled]
        while view:
            written = os.pwrite(descriptor, view, offset)
            view, offset = view[written:], offset + written
        return filled

    def open(self, stream: IO[bytes], entry: SealedFile, out: Path, where: str) -> None:
        what = f"{where}: {entry.path} (object {entry.object})"
        header = _read_exactly(stream, len(MAGIC) + 8, what)
        if header[:len(MAGIC)] != MAGIC:
            raise BackupEngineError(f"{what} is not a sealed object")
        prefix = header[len(MAGIC):]
        size = 0
        pending: deque[tuple[Future[int], int]] = deque()

        def settle() -> None:
            nonlocal size
            future, index = pending.popleft()
            try:
                filled = future.result()
            except (InvalidTag, zstandard.ZstdError):
                raise BackupEngineError(f"{what}: chunk {index} fails its authentication: the object was "
                                        "changed or damaged") from None
            if filled != CHUNK and index != entry.chunks - 1:
                raise BackupEngineError(f"{what}: chunk {index} holds {filled} bytes, not {CHUNK}: damaged")
            size += filled

        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with _Digest() as stored:
                stored.update(header)
                for index in range(entry.chunks):
                    length_bytes = stream.read(_LENGTH.size)
                    if len(length_bytes) < _LENGTH.size:
                        raise BackupEngineError(f"{what} is cut off after {index} of {entry.chunks} chunks")
                    (length,) = _LENGTH.unpack(length_bytes)
                    if length > CHUNK + CHUNK // 8 + 1024:
                        raise BackupEngineError(f"{what}: chunk {index} claims {length} bytes: damaged")
                    block = _read_exactly(stream, length, what)
                    stored.update(length_bytes + block)
                    nonce = prefix + struct.pack(">I", index)
                    aad = _aad(self.label, entry.object, index, index == entry.chunks - 1)
                    pending.append((self.pool.submit(self._chunk, block, nonce, aad, descriptor,
                                                     index * CHUNK), index))
                    while len(pending) >= self.window:
                        settle()
                while pending:
                    settle()
                if stream.read(1):
                    raise BackupEngineError(f"{what} holds more than its {entry.chunks} chunks: damaged")
                if stored.hexdigest() != entry.stored_sha256 or size != entry.size:
                    raise BackupEngineError(f"{what} does not match the SHA-256 the manifest records")
        finally:
            self.settle_all(future for future, _ in pending)
            os.close(descriptor)


class _Digest:
    """A SHA-256 computed on a thread of its own from the blocks handed to it in order, so that hashing
    runs beside reading, writing and the pool's work (hashlib releases the GIL). At most 8 blocks wait
    for it; `close` (or `hexdigest`) ends its thread."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, daemon=True, name="sha256")
        self._thread.start()

    def _run(self) -> None:
        while (block := self._blocks.get()) is not None:
            self._digest.update(block)

    def update(self, block: bytes) -> None:
        self._blocks.put(block)

    def close(self) -> None:
        if self._thread.is_alive():
            self._blocks.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        self.close()
        return self._digest.hexdigest()

    def __enter__(self) -> _Digest:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _object_sha256(place: DirectoryPlace | BucketPlace, label: str, name: str) -> str:
    digest = hashlib.sha256()
    with place.open(label, f"data/{name}") as stream:
        while block := stream.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _aad(label: str, name: str, index: int, last: bool) -> bytes:
    return f"{label}/{name}/{index}/{'last' if last else 'more'}".encode()


def _derive(passphrase: str, salt: bytes, kdf: dict[str, Any]) -> bytes:
    if kdf.get("name") != "scrypt":
        raise BackupEngineError(f"unknown key derivation {kdf.get('name')!r}")
    return hashlib.scrypt(passphrase.encode(), salt=salt, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"]),
                          maxmem=256 * 1024 * 1024, dklen=32)


def _files(document: dict[str, Any]) -> list[SealedFile]:
    if document.get("format") != FORMAT:
        raise ValueError(f"format {document.get('format')!r}, expected {FORMAT!r}")
    return [SealedFile(**entry) for entry in document["files"]]


def _read_exactly(stream: IO[bytes], count: int, what: str) -> bytes:
    data = b""
    while len(data) < count:
        block = stream.read(count - len(data))
        if not block:
            raise BackupEngineError(f"{what} is cut off")
        data += block
    return data


def _sync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _mkdtemp(work_dir: Path | None) -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="opsplane-seal-", dir=work_dir)


def _quietly(call: Callable[[], Any]) -> None:
    try:
        call()
    except Exception:  # noqa: BLE001, S110 - cleaning up after a failure already being raised
        pass
