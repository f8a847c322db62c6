"""Workshop classes: join codes, the instructor key, participants' records, leaderboard and CSV."""

import csv
import io
import secrets
import threading

import pytest

from cnn_core.engine.errors import UserError
from cnn_core.service.classes import (
    CODE_ALPHABET,
    NICKNAME_MAX,
    FolderClassStore,
    Handout,
    RedisClassStore,
    clean_text,
    leaderboard,
    results_csv,
)


def member() -> str:
    return secrets.token_urlsafe(16)


@pytest.fixture(params=["folder", "redis"])
def store(request, tmp_path):
    """Every contract test runs on both stores."""
    if request.param == "folder":
        return FolderClassStore(tmp_path / "classes")
    from cnn_core.service.redis_queue import connect

    connection = connect(request.getfixturevalue("redis_url"))
    connection.flushdb()
    return RedisClassStore(connection)


def test_create_gives_a_code_and_a_key_not_derived_from_it(store):
    room, key = store.create("Tuesday CNNs")
    assert len(room.code) == 6 and set(room.code) <= set(CODE_ALPHABET)
    assert len(key) >= 32 and room.code not in key and room.class_id not in key
    assert key not in room.to_json()  # only its hash is kept
    assert store.is_instructor(room.class_id, key)
    assert not store.is_instructor(room.class_id, room.code)
    assert not store.is_instructor(room.class_id, "")
    assert not store.is_instructor(room.class_id, None)
    other, other_key = store.create("Other")
    assert not store.is_instructor(room.class_id, other_key)


def test_join_by_code_case_and_spaces_do_not_matter(store):
    room, _ = store.create("W")
    me = member()
    joined, participant = store.join(room.code.lower()[:3] + " " + room.code.lower()[3:], me, "  Ada  ")
    assert joined.class_id == room.class_id
    assert participant.nickname == "Ada"
    assert store.class_of(me).class_id == room.class_id
    # Joining again (a reload) keeps the record and may rename.
    store.record_check(me, "add_convs", True, 0.9, 1000, 30.0)
    _, again = store.join(room.code, me, "Ada L.")
    assert again.nickname == "Ada L." and "add_convs" in again.passed
    assert [p.nickname for p in store.participants(room.class_id)] == ["Ada L."]


@pytest.mark.parametrize("code", ["", "ZZZZZZ", "abc", "../../etc", None, 123])
def test_a_wrong_code_is_refused_with_a_sentence(store, code):
    store.create("W")
    with pytest.raises(UserError, match="No open class has that code"):
        store.join(code, member(), "Ada")


def test_nicknames_are_plain_capped_text():
    assert clean_text("**Bob**\n[x](http://e)\u202e", NICKNAME_MAX, "nickname") == "**Bob**[x](http://e)"
    assert len(clean_text("x" * 500, NICKNAME_MAX, "nickname")) == NICKNAME_MAX
    for bad in ("", "   ", "\n\t", None):
        with pytest.raises(UserError):
            clean_text(bad, NICKNAME_MAX, "nickname")


def test_a_crafted_member_id_cannot_escape_the_folder(store):
    room, _ = store.create("W")
    with pytest.raises(UserError):
        store.join(room.code, "../../../../tmp/evil", "Eve")
    assert store.class_of("../../x") is None


def test_push_is_for_the_instructor_only(store):
    room, key = store.create("W")
    with pytest.raises(UserError):
        store.push(room.class_id, room.code, Handout("exercise", "add_convs", "Add", 0.0))
    store.push(room.class_id, key, Handout("exercise", "add_convs", "Add more convolutions", 1.0))
    assert store.get(room.class_id).handout.value == "add_convs"


def test_expired_classes_are_gone(tmp_path):
    store = FolderClassStore(tmp_path, ttl_s=-1)
    room, key = store.create("W")
    assert store.get(room.class_id) is None
    assert store.by_code(room.code) is None
    assert not store.is_instructor(room.class_id, key)
    assert store.remove_expired() == 1
    assert not (tmp_path / room.class_id).exists()


def test_runs_and_checks_are_recorded_and_ranked(store):
    room, _ = store.create("W")
    a, b, c = member(), member(), member()
    for who, name in ((a, "A"), (b, "B"), (c, "C")):
        store.join(room.code, who, name)
    store.record_check(a, "add_convs", True, 0.90, 5000, 40.0)
    store.record_check(b, "add_convs", True, 0.90, 3000, 80.0)
    store.record_check(c, "add_convs", True, 0.91, 9000, 99.0)
    store.record_check(a, "add_convs", False, 0.99, 10, 1.0)  # a failed check changes nothing
    store.record_check(a, "add_convs", True, 0.85, 10, 1.0)  # a worse pass keeps the best
    board = leaderboard(store.participants(room.class_id), "add_convs")
    assert [(r["place"], r["nickname"]) for r in board] == [(1, "C"), (2, "B"), (3, "A")]
    assert board[2]["accuracy"] == 0.90
    store.record_run(a, {"name": "m", "state": "running", "epoch": 2, "epochs": 5})
    assert store.participant(room.class_id, a).run["epoch"] == 2
    store.record_run(member(), {"state": "running"})  # outside a class: nothing happens


def test_csv_has_one_row_per_participant_and_defuses_formulas(store):
    room, _ = store.create("W")
    a = member()
    store.join(room.code, a, "=HYPERLINK(1)")
    store.join(room.code, member(), "Bo")
    store.record_check(a, "add_convs", True, 0.9, 100, 5.0)
    rows = list(csv.DictReader(io.StringIO(results_csv(store.participants(room.class_id), ["add_convs"]))))
    assert [r["nickname"] for r in rows] == ["'=HYPERLINK(1)", "Bo"]
    assert rows[0]["add_convs_accuracy"] == "0.9" and rows[0]["exercises_passed"] == "1"
    assert rows[1]["add_convs_accuracy"] == ""


def test_forty_participants_join_at_once(store):
    room, _ = store.create("W")
    errors = []

    def join(i):
        try:
            who = member()
            store.join(room.code, who, f"P{i}")
            store.record_run(who, {"state": "queued"})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=join, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    people = store.participants(room.class_id)
    assert len(people) == 40 and all(p.run == {"state": "queued"} for p in people)


def test_redis_keys_expire_with_the_class(redis_url):
    from cnn_core.service.redis_queue import connect

    connection = connect(redis_url)
    store = RedisClassStore(connection, ttl_s=60)
    room, _ = store.create("W")
    member_id = member()
    store.join(room.code, member_id, "Ada")
    keys = [f"cnn:class:{room.class_id}", f"cnn:class:{room.class_id}:members", f"cnn:class-code:{room.code}",
            f"cnn:class-member:{member_id}"]
    ttls = [connection.ttl(key) for key in keys]
    assert all(0 < ttl <= 60 for ttl in ttls), ttls


def test_two_replicas_see_one_class(redis_url):
    from cnn_core.service.redis_queue import connect

    a, b = RedisClassStore(connect(redis_url)), RedisClassStore(connect(redis_url))
    room, key = a.create("Shared")
    member_id = member()
    b.join(room.code, member_id, "Bo")
    assert [p.nickname for p in a.participants(room.class_id)] == ["Bo"]
    assert b.is_instructor(room.class_id, key)
