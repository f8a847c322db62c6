"""Workshop classes: an instructor's class, the participants who joined it, and what each has done.

An instructor creates a class and gets two things: a short join code for the room (six letters
and digits, read aloud or written on a board) and a secret instructor key (128+ random bits).
The key is stored only as a SHA-256 hash, and neither is derived from the other, so knowing the
join code (or the class id) tells nothing about the key. A participant joins with the code and a
nickname; their workspace id becomes their member id, so a reload finds their class again, and
nothing identifies them beyond the nickname they typed. Classes expire (`ttl_s`).

Each participant's record is one JSON file that only their own session writes (exercises passed,
the current run, best result per exercise), so 40 participants writing at once never race over
one file; the class file itself is written by the instructor (hand-outs) only. Every write
replaces a whole file atomically (`service.atomic`).

`FolderClassStore` is the embedded store: a folder on the server. With `CNN_REDIS_URL` set,
`RedisClassStore` keeps the same records in Redis, so every replica of a workshop sees one class.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import math
import re
import secrets
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cnn_core.engine.errors import UserError
from cnn_core.service import atomic

# No 0/O, 1/I/L: a code is read from a projector and typed on a phone.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
NICKNAME_MAX = 24
TITLE_MAX = 60
DEFAULT_TTL_S = 12 * 3600
MAX_PARTICIPANTS = 200
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def clean_text(text: object, limit: int, what: str) -> str:
    """Plain, printable, length-capped text from what a person typed (UserError when nothing is left)."""
    if not isinstance(text, str):
        raise UserError(f"Type a {what}.")
    # Control and formatting characters (newlines, bidi overrides, zero-width) never reach the page.
    cleaned = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    cleaned = " ".join(cleaned.split())[:limit].strip()
    if not cleaned:
        raise UserError(f"Type a {what} of 1 to {limit} characters.")
    return cleaned


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise UserError(f"That {what} is not valid; open the link you were given again.")
    return value


def normalise_code(code: object) -> str:
    """The join code as stored: upper case, spaces and dashes removed."""
    if not isinstance(code, str):
        return ""
    return re.sub(r"[\s-]", "", code).upper()


@dataclass(frozen=True)
class Handout:
    """What the instructor pushed to everyone: an exercise, or a shared experiment link (locked)."""

    kind: str  # "exercise" or "experiment"
    value: str  # the exercise key, or the shared link's query string
    title: str
    at: float


@dataclass(frozen=True)
class Classroom:
    class_id: str
    title: str
    code: str
    created: float
    expires: float
    key_hash: str
    handout: Handout | None = None

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Classroom:
        data = json.loads(text)
        handout = data.pop("handout", None)
        return cls(**data, handout=None if handout is None else Handout(**handout))


@dataclass
class Participant:
    member_id: str
    nickname: str
    joined: float
    # exercise key -> seconds since joining when it first passed
    passed: dict[str, float] = field(default_factory=dict)
    # the current or last run: {"name", "state", "epoch", "epochs", "test_accuracy", "params"}
    run: dict[str, Any] = field(default_factory=dict)
    # exercise key -> {"accuracy", "params", "seconds"}: the best checked run of each exercise
    best: dict[str, dict[str, float]] = field(default_factory=dict)
    # the latest finished run's curve, for the instructor's read-only look: [{"epoch", "accuracy", ...}]
    history: list[dict[str, float]] = field(default_factory=list)
    updated: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Participant:
        return cls(**json.loads(text))


class ClassStore:
    """What a class store does; subclasses keep the records (a folder, Redis), this holds the rules.

    A subclass provides whole-record reads and writes: the class, its join code, each participant,
    and which class a member belongs to. Every write replaces one record, so concurrent writers of
    different records never race, and one participant's record is only written by their session.
    """

    ttl_s: float = DEFAULT_TTL_S

    # -- records a subclass keeps -------------------------------------------------------------

    def _write_class(self, room: Classroom) -> None:
        raise NotImplementedError

    def _read_class(self, class_id: str) -> Classroom | None:
        raise NotImplementedError

    def _write_code(self, code: str, class_id: str) -> bool:
        """Claim `code` for the class; False when another class already has it."""
        raise NotImplementedError

    def _read_code(self, code: str) -> str | None:
        raise NotImplementedError

    def _write_member(self, class_id: str, participant: Participant) -> None:
        raise NotImplementedError

    def _read_member(self, class_id: str, member_id: str) -> Participant | None:
        raise NotImplementedError

    def _delete_member(self, class_id: str, member_id: str) -> None:
        raise NotImplementedError

    def _members(self, class_id: str) -> list[Participant]:
        raise NotImplementedError

    def _member_count(self, class_id: str) -> int:
        raise NotImplementedError

    def _write_membership(self, member_id: str, class_id: str | None) -> None:
        raise NotImplementedError

    def _read_membership(self, member_id: str) -> str | None:
        raise NotImplementedError

    def remove_expired(self) -> int:
        return 0

    # -- classes -----------------------------------------------------------------------------

    def create(self, title: str = "Workshop") -> tuple[Classroom, str]:
        """A new class and its instructor key (shown once; only its hash is kept)."""
        title = clean_text(title, TITLE_MAX, "class name")
        self.remove_expired()
        key = secrets.token_urlsafe(24)
        now = time.time()
        class_id = secrets.token_urlsafe(16)
        for _ in range(20):
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            if self._write_code(code, class_id):
                break
        else:  # pragma: no cover - 31**6 codes; only reachable with thousands of live classes
            raise RuntimeError("No free join code.")
        room = Classroom(class_id=class_id, title=title, code=code, created=now, expires=now + self.ttl_s,
                         key_hash=_hash(key))
        self._write_class(room)
        return room, key

    def get(self, class_id: str) -> Classroom | None:
        """The class, or None when it does not exist or has expired."""
        if not isinstance(class_id, str) or not _ID.match(class_id):
            return None
        room = self._read_class(class_id)
        return None if room is None or room.expired else room

    def by_code(self, code: str) -> Classroom | None:
        code = normalise_code(code)
        if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
            return None
        class_id = self._read_code(code)
        return None if class_id is None else self.get(class_id)

    def is_instructor(self, class_id: str, key: str | None) -> bool:
        room = self.get(class_id)
        return bool(room and isinstance(key, str) and key and hmac.compare_digest(room.key_hash, _hash(key)))

    def push(self, class_id: str, key: str, handout: Handout | None) -> Classroom:
        """Hand an exercise or experiment to everyone in the class (instructor only); None takes it back."""
        if not self.is_instructor(class_id, key):
            raise UserError("Only the instructor's link can hand out exercises.")
        updated = Classroom(**{**asdict(self.get(class_id)), "handout": handout})
        self._write_class(updated)
        return updated

    # -- participants ------------------------------------------------------------------------

    def join(self, code: str, member_id: str, nickname: str) -> tuple[Classroom, Participant]:
        """Join by code; joining again (a reload, a new tab) keeps the record and may rename."""
        room = self.by_code(code)
        if room is None:
            raise UserError("No open class has that code; check the code on the board (six letters and digits).")
        member_id = _check_id(member_id, "workspace")
        nickname = clean_text(nickname, NICKNAME_MAX, "nickname")
        existing = self.participant(room.class_id, member_id)
        if existing is None and self._member_count(room.class_id) >= MAX_PARTICIPANTS:
            raise UserError(f"This class is full ({MAX_PARTICIPANTS} participants); ask the instructor.")
        participant = existing or Participant(member_id=member_id, nickname=nickname, joined=time.time())
        participant.nickname = nickname
        self.save(room.class_id, participant)
        self._write_membership(member_id, room.class_id)
        return room, participant

    def class_of(self, member_id: str) -> Classroom | None:
        """The open class a workspace belongs to, if any."""
        if not isinstance(member_id, str) or not _ID.match(member_id):
            return None
        class_id = self._read_membership(member_id)
        room = None if class_id is None else self.get(class_id)
        return room if room is not None and self.participant(room.class_id, member_id) is not None else None

    def leave(self, member_id: str) -> None:
        room = self.class_of(member_id)
        if room is not None:
            self._delete_member(room.class_id, member_id)
        if isinstance(member_id, str) and _ID.match(member_id):
            self._write_membership(member_id, None)

    def participant(self, class_id: str, member_id: str) -> Participant | None:
        if not (isinstance(member_id, str) and _ID.match(member_id) and isinstance(class_id, str)
                and _ID.match(class_id)):
            return None
        return self._read_member(class_id, member_id)

    def save(self, class_id: str, participant: Participant) -> None:
        participant.updated = time.time()
        _check_id(participant.member_id, "workspace")
        self._write_member(_check_id(class_id, "class link"), participant)

    def participants(self, class_id: str) -> list[Participant]:
        """Everyone in the class, in the order they joined."""
        return sorted(self._members(_check_id(class_id, "class link")), key=lambda p: p.joined)

    def record_run(self, member_id: str, run: dict[str, Any], history: Sequence[dict] | None = None) -> None:
        """Note a participant's current run (state, epoch…) when it changed; a no-op outside a class."""
        room = self.class_of(member_id)
        if room is None:
            return
        participant = self.participant(room.class_id, member_id)
        run = {k: v for k, v in run.items() if isinstance(v, str | int | float | type(None))}
        if participant.run == run and history is None:
            return
        participant.run = run
        if history is not None:
            participant.history = [dict(row) for row in history][-200:]
        self.save(room.class_id, participant)

    def record_check(self, member_id: str, exercise_key: str, passed: bool, accuracy: float | None,
                     params: int | None, seconds: float | None) -> None:
        """Note an exercise check: the first pass (with its time) and the best passing result."""
        room = self.class_of(member_id)
        if room is None or not passed:
            return
        participant = self.participant(room.class_id, member_id)
        participant.passed.setdefault(exercise_key, round(time.time() - participant.joined, 1))
        entry = {"accuracy": accuracy, "params": params, "seconds": seconds}
        previous = participant.best.get(exercise_key)
        if previous is None or _rank(entry) < _rank(previous):
            participant.best[exercise_key] = entry
        self.save(room.class_id, participant)


class FolderClassStore(ClassStore):
    """Classes in a folder: `<class_id>/class.json`, `<class_id>/members/<member>.json`, `codes/`, `members/`."""

    def __init__(self, root: str | Path, ttl_s: float = DEFAULT_TTL_S):
        self.root = Path(root)
        self.ttl_s = ttl_s

    def _folder(self, class_id: str) -> Path:
        return self.root / _check_id(class_id, "class link")

    def _write_class(self, room: Classroom) -> None:
        folder = self._folder(room.class_id)
        (folder / "members").mkdir(parents=True, exist_ok=True)
        atomic.write_text(folder / "class.json", room.to_json())

    def _read_class(self, class_id: str) -> Classroom | None:
        try:
            return Classroom.from_json((self._folder(class_id) / "class.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _write_code(self, code: str, class_id: str) -> bool:
        codes = self.root / "codes"
        codes.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two classes created at once never get the same code.
            with open(codes / code, "x", encoding="utf-8") as handle:
                handle.write(class_id)
        except FileExistsError:
            return False
        return True

    def _read_code(self, code: str) -> str | None:
        try:
            return (self.root / "codes" / code).read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def _member_path(self, class_id: str, member_id: str) -> Path:
        return self._folder(class_id) / "members" / f"{_check_id(member_id, 'workspace')}.json"

    def _write_member(self, class_id: str, participant: Participant) -> None:
        atomic.write_text(self._member_path(class_id, participant.member_id), participant.to_json())

    def _read_member(self, class_id: str, member_id: str) -> Participant | None:
        try:
            return Participant.from_json(self._member_path(class_id, member_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _delete_member(self, class_id: str, member_id: str) -> None:
        self._member_path(class_id, member_id).unlink(missing_ok=True)

    def _members(self, class_id: str) -> list[Participant]:
        found = []
        for path in (self._folder(class_id) / "members").glob("*.json"):
            try:
                found.append(Participant.from_json(path.read_text(encoding="utf-8")))
            except (FileNotFoundError, ValueError, TypeError):
                continue
        return found

    def _member_count(self, class_id: str) -> int:
        return sum(1 for _ in (self._folder(class_id) / "members").glob("*.json"))

    def _write_membership(self, member_id: str, class_id: str | None) -> None:
        path = self.root / "members" / _check_id(member_id, "workspace")
        if class_id is None:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, class_id)

    def _read_membership(self, member_id: str) -> str | None:
        try:
            return (self.root / "members" / member_id).read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def remove_expired(self) -> int:
        """Delete expired classes with their records and codes; returns how many went."""
        import shutil

        removed = 0
        if not self.root.exists():
            return 0
        for folder in self.root.iterdir():
            if folder.name in ("codes", "members") or not folder.is_dir():
                continue
            try:
                room = Classroom.from_json((folder / "class.json").read_text(encoding="utf-8"))
            except (FileNotFoundError, ValueError, TypeError):
                continue
            if room.expired:
                (self.root / "codes" / room.code).unlink(missing_ok=True)
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed


class RedisClassStore(ClassStore):
    """Classes in Redis, for replicas that share one Redis: every key expires with its class.

    `cnn:class:<id>` the class (JSON), `cnn:class:<id>:members` a hash of participants (one field
    each, so writers never race), `cnn:class-code:<code>` and `cnn:class-member:<member>` the
    look-ups (SET NX claims a code).
    """

    PREFIX = "cnn:class"

    def __init__(self, connection, ttl_s: float = DEFAULT_TTL_S):
        self.redis = connection
        self.ttl_s = ttl_s

    def _ttl(self, room: Classroom | None = None) -> int:
        remaining = (room.expires - time.time()) if room is not None else self.ttl_s
        return max(1, int(math.ceil(remaining)))

    def _class_ttl(self, class_id: str) -> int:
        seconds = self.redis.ttl(f"{self.PREFIX}:{class_id}")
        return seconds if isinstance(seconds, int) and seconds > 0 else self._ttl()

    def _write_class(self, room: Classroom) -> None:
        self.redis.set(f"{self.PREFIX}:{room.class_id}", room.to_json(), ex=self._ttl(room))

    def _read_class(self, class_id: str) -> Classroom | None:
        data = self.redis.get(f"{self.PREFIX}:{class_id}")
        try:
            return None if data is None else Classroom.from_json(data)
        except (ValueError, TypeError):
            return None

    def _write_code(self, code: str, class_id: str) -> bool:
        return bool(self.redis.set(f"{self.PREFIX}-code:{code}", class_id, nx=True, ex=self._ttl()))

    def _read_code(self, code: str) -> str | None:
        value = self.redis.get(f"{self.PREFIX}-code:{code}")
        return None if value is None else value.decode()

    def _members_key(self, class_id: str) -> str:
        return f"{self.PREFIX}:{class_id}:members"

    def _write_member(self, class_id: str, participant: Participant) -> None:
        key = self._members_key(class_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, participant.member_id, participant.to_json())
        pipe.expire(key, self._class_ttl(class_id))
        pipe.execute()

    def _read_member(self, class_id: str, member_id: str) -> Participant | None:
        data = self.redis.hget(self._members_key(class_id), member_id)
        try:
            return None if data is None else Participant.from_json(data)
        except (ValueError, TypeError):
            return None

    def _delete_member(self, class_id: str, member_id: str) -> None:
        self.redis.hdel(self._members_key(class_id), member_id)

    def _members(self, class_id: str) -> list[Participant]:
        found = []
        for data in self.redis.hvals(self._members_key(class_id)):
            try:
                found.append(Participant.from_json(data))
            except (ValueError, TypeError):
                continue
        return found

    def _member_count(self, class_id: str) -> int:
        return int(self.redis.hlen(self._members_key(class_id)))

    def _write_membership(self, member_id: str, class_id: str | None) -> None:
        key = f"{self.PREFIX}-member:{member_id}"
        if class_id is None:
            self.redis.delete(key)
        else:
            self.redis.set(key, class_id, ex=self._class_ttl(class_id))

    def _read_membership(self, member_id: str) -> str | None:
        value = self.redis.get(f"{self.PREFIX}-member:{member_id}")
        return None if value is None else value.decode()


def make_class_store(settings) -> ClassStore:
    """Redis when `CNN_REDIS_URL` is set (replicas share the class), else a folder."""
    ttl_s = settings.class_ttl_h * 3600
    if getattr(settings, "redis_url", None):
        from cnn_core.service.redis_queue import connect

        return RedisClassStore(connect(settings.redis_url), ttl_s=ttl_s)
    return FolderClassStore(settings.classes_dir, ttl_s=ttl_s)


def _rank(entry: dict[str, Any]) -> tuple[float, float, float]:
    """Leaderboard order: higher accuracy, then fewer parameters, then less time."""
    accuracy = entry.get("accuracy")
    params = entry.get("params")
    seconds = entry.get("seconds")
    return (
        -(accuracy if isinstance(accuracy, int | float) else -1.0),
        params if isinstance(params, int | float) else float("inf"),
        seconds if isinstance(seconds, int | float) else float("inf"),
    )


def leaderboard(participants: Iterable[Participant], exercise_key: str) -> list[dict[str, Any]]:
    """One row per participant who passed the exercise, best first (accuracy, parameters, time)."""
    rows = [
        {"nickname": p.nickname, **p.best[exercise_key], "passed_after_s": p.passed.get(exercise_key)}
        for p in participants
        if exercise_key in p.best
    ]
    rows.sort(key=_rank)
    for place, row in enumerate(rows, start=1):
        row["place"] = place
    return rows


def results_csv(participants: Sequence[Participant], exercise_keys: Sequence[str]) -> str:
    """The class's results as CSV: one row per participant, passes and best results per exercise."""
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["nickname", "joined", "exercises_passed", "current_run", "run_state", "run_test_accuracy"]
    for key in exercise_keys:
        header += [f"{key}_passed_after_s", f"{key}_accuracy", f"{key}_params", f"{key}_seconds"]
    writer.writerow(header)
    for p in participants:
        # A nickname starting with =, +, - or @ would run as a formula in a spreadsheet.
        nickname = "'" + p.nickname if p.nickname[:1] in "=+-@" else p.nickname
        row = [nickname, time.strftime("%Y-%m-%d %H:%M", time.localtime(p.joined)), len(p.passed),
               p.run.get("name", ""), p.run.get("state", ""), p.run.get("test_accuracy", "")]
        for key in exercise_keys:
            best = p.best.get(key, {})
            row += [p.passed.get(key, ""), best.get("accuracy", ""), best.get("params", ""), best.get("seconds", "")]
        writer.writerow(row)
    return out.getvalue()
