import dataclasses
import hashlib
import json

import pytest

from harness.attacks import design
from harness.errors import SpecError
from harness.registry import Registry
from harness.zoo.spec import load_profile


def _write(tmp_path, text):
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


def test_shipped_profiles_parse():
    for name in ("tiny", "toy", "default", "full", "stealthy"):
        profile = load_profile(name)
        assert profile.entries and len({e.id for e in profile.entries}) == len(profile.entries)
    tiny = load_profile("tiny")
    assert (
        sum(e.poisoned for e in tiny.entries) >= 2
        and sum(not e.poisoned for e in tiny.entries) >= 3
    )
    assert {e.arch for e in tiny.entries} == {"mnist_cnn_a", "mnist_cnn_b"}


def test_unknown_key_suggests_the_right_one(tmp_path):
    path = _write(tmp_path, 'schema_version = 1\n[[models]]\nid = "a"\nepohcs = 2\n')
    with pytest.raises(SpecError, match="did you mean 'epochs'"):
        load_profile(path)


def test_bad_toml_and_duplicates_and_missing_profile(tmp_path):
    with pytest.raises(SpecError, match="invalid TOML"):
        load_profile(_write(tmp_path, "schema_version = \n"))
    dup = 'schema_version = 1\n[[models]]\nid = "a"\n[[models]]\nid = "a"\n'
    with pytest.raises(SpecError, match="duplicate"):
        load_profile(_write(tmp_path, dup))
    with pytest.raises(SpecError, match="did you mean 'tiny'"):
        load_profile("tinny")


def test_spec_hash_tracks_content_not_id():
    entry = load_profile("tiny").entries[3]
    assert dataclasses.replace(entry, id="other").spec_hash() == entry.spec_hash()
    assert dataclasses.replace(entry, seed=entry.seed + 1).spec_hash() != entry.spec_hash()


def test_lr_schedule_is_checked_and_hashed_only_when_set(tmp_path):
    from harness.zoo import spec

    bad = 'schema_version = 1\n[[models]]\nid = "a"\nlr_schedule = "cosin"\n'
    with pytest.raises(SpecError, match="unknown lr_schedule 'cosin'.*constant, cosine"):
        load_profile(_write(tmp_path, bad))
    entry = load_profile("tiny").entries[0]
    cosine = dataclasses.replace(entry, lr_schedule="cosine")
    assert cosine.spec_hash() != entry.spec_hash()
    # An entry at the default keeps the address it had before the key existed.
    body = dataclasses.asdict(entry)
    # Neither a split nor a deal group is ever in the address.
    del body["id"], body["lr_schedule"], body["split"], body["deal_group"]
    body["builder_version"] = spec.BUILDER_VERSION
    body["code"] = spec.build_code_hash(entry.dataset, entry.arch, entry.attack)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    assert entry.spec_hash() == hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.integration  # the schedule is a Keras object
def test_cosine_lr_schedule_decays_to_zero():
    from harness.zoo.training import EntryTrainer

    entry = load_profile("tiny").entries[0]
    cosine = dataclasses.replace(entry, lr_schedule="cosine")
    rate = EntryTrainer(cosine, (28, 28, 1), 10)._learning_rate(1000, 3)
    steps = -(-1000 // cosine.batch_size) * 3
    assert float(rate(0)) == pytest.approx(cosine.learning_rate)
    assert float(rate(steps)) == pytest.approx(0.0, abs=1e-9)
    assert EntryTrainer(entry, (28, 28, 1), 10)._learning_rate(1000, 3) == entry.learning_rate


def test_attack_params_are_validated():
    with pytest.raises(SpecError, match="no parameter"):
        design("badnets_patch", {"sise": 3}, (28, 28, 1), 10, 0)
    with pytest.raises(SpecError, match="did you mean 'badnets_patch'"):
        design("badnet_patch", {}, (28, 28, 1), 10, 0)
    with pytest.raises(SpecError, match="target"):
        design("badnets_patch", {"target": 12}, (28, 28, 1), 10, 0)


def test_pixel_backdoor_is_backfuzz_s():
    bd = design("badnets_pixel_a2a", {}, (28, 28, 1), 10, 0)
    (trig,) = bd.triggers
    assert trig.size == 1 and trig.mask[27, 27] == 1.0 and bd.all_to_all
    assert trig.target_of.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]


def _copy_package(tmp_path, monkeypatch):
    import shutil

    from harness.zoo import spec

    root = tmp_path / "harness"
    shutil.copytree(spec._package_root(), root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(spec, "_package_root", lambda: root)
    spec.build_code_hash.cache_clear()
    return root, spec


def test_code_hash_follows_what_an_entry_builds_with(tmp_path, monkeypatch):
    root, spec = _copy_package(tmp_path, monkeypatch)
    kinds = {
        "pixel": ("mnist", "mnist_cnn_a", "badnets_pixel_a2a"),
        "blended": ("mnist", "mnist_cnn_a", "blended"),
        "clean_b": ("mnist", "mnist_cnn_b", "none"),
        "face": ("synthfaces", "deepid", "sunglasses"),
    }

    def hashes():
        spec.build_code_hash.cache_clear()
        return {k: spec.build_code_hash(*v) for k, v in kinds.items()}

    before = hashes()
    assert len(set(before.values())) == len(before)

    def edit(rel):
        path = root / rel
        path.write_text(path.read_text() + "\n# edited\n")
        return hashes()

    changed = lambda now: {k for k in kinds if now[k] != before[k]}  # noqa: E731
    after = edit("attacks/badnets.py")  # a recipe: only its entries
    assert changed(after) == {"pixel"}
    before = after
    after = edit("data/synthfaces.py")  # a data set (the face triggers import it too)
    assert changed(after) == {"face"}
    before = after
    (root / "attacks" / "brand_new.py").write_text("X = 1\n")  # a new module: nothing
    after = edit("attacks/registry.py")  # the dispatch table: nothing
    assert changed(after) == set()
    for rel in ("zoo/builder.py", "zoo/objects.py", "zoo/bundle.py"):  # writing, not weights
        assert changed(edit(rel)) == set(), rel
    after = edit("zoo/training.py")  # the core: everything
    assert changed(after) == set(kinds)


def test_code_hash_follows_the_architecture_source(monkeypatch):
    from harness.zoo import architectures, spec

    spec.build_code_hash.cache_clear()
    before = spec.build_code_hash("mnist", "mnist_cnn_b", "none")
    other = spec.build_code_hash("mnist", "mnist_cnn_a", "none")
    swapped = {**architectures.ARCHITECTURES, "mnist_cnn_b": architectures.deepid}
    monkeypatch.setattr(architectures, "ARCHITECTURES", Registry("architecture", swapped.items()))
    spec.build_code_hash.cache_clear()
    assert spec.build_code_hash("mnist", "mnist_cnn_b", "none") != before
    assert spec.build_code_hash("mnist", "mnist_cnn_a", "none") == other
    monkeypatch.undo()
    spec.build_code_hash.cache_clear()


def _drawn_profile(tmp_path, models, draw="epochs = [3, 4, 5]\nlearning_rate = [0.001, 0.002]"):
    """``models``: ids, backdoored where the id starts with "bd", a clean counterpart where
    it starts with "cp"."""
    attack = 'attack = "badnets_patch"\n'
    twin = attack + "attack_params = { clean_counterpart = true }\n"
    lines = {"bd": attack, "cp": twin}
    body = "".join(f'[[models]]\nid = "{m}"\n{lines.get(m[:2], "")}' for m in models)
    return load_profile(
        _write(tmp_path, f'schema_version = 1\nname = "d"\n[draw.mnist]\n{draw}\n{body}')
    )


def test_draw_deals_clean_and_backdoored_models_the_same_mix(tmp_path):
    import collections

    ids = [f"clean{i}" for i in range(12)] + [f"bd{i}" for i in range(12)]
    profile = _drawn_profile(tmp_path, ids)

    def mix(poisoned, key):
        return collections.Counter(
            getattr(e, key) for e in profile.entries if e.poisoned == poisoned
        )

    for key, choices in (("epochs", {3, 4, 5}), ("learning_rate", {0.001, 0.002})):
        assert mix(False, key) == mix(True, key) and set(mix(True, key)) == choices
    assert mix(False, "epochs") == {3: 4, 4: 4, 5: 4}
    # The keys are dealt independently: not every model pairs its two settings alike.
    assert len({(e.epochs, e.learning_rate) for e in profile.entries}) == 6
    # The order of the models in the file does not matter; the deal is reproducible.
    again = _drawn_profile(tmp_path, ids[::-1])
    assert {e.id: (e.epochs, e.learning_rate) for e in again.entries} == {
        e.id: (e.epochs, e.learning_rate) for e in profile.entries
    }
    # Unequal groups get counts as even as their sizes allow (7 vs 12 models here).
    uneven = _drawn_profile(tmp_path, ids[:7] + ids[12:])
    for value in (3, 4, 5):
        assert (
            abs(
                sum(e.epochs == value for e in uneven.entries if e.poisoned)
                - sum(e.epochs == value for e in uneven.entries if not e.poisoned)
            )
            <= 2
        )
    # Another data set's models keep their fixed settings.
    faces = load_profile(
        _write(
            tmp_path,
            "schema_version = 1\n[draw.mnist]\nepochs = [3, 4]\n"
            '[[models]]\nid = "f"\ndataset = "synthfaces"\narch = "deepid"\nepochs = 9\n',
        )
    )
    assert faces.entries[0].epochs == 9


def test_draw_deals_counterparts_as_a_third_group_with_the_same_mix(tmp_path):
    import collections

    ids = [f"{role}{i}" for role in ("clean", "cp", "bd") for i in range(6)]
    profile = _drawn_profile(tmp_path, ids, draw="epochs = [3, 4, 5]")
    assert collections.Counter(e.role for e in profile.entries) == {
        "clean": 6,
        "counterpart": 6,
        "backdoored": 6,
    }
    for role in ("clean", "counterpart", "backdoored"):
        mix = collections.Counter(e.epochs for e in profile.entries if e.role == role)
        assert mix == {3: 2, 4: 2, 5: 2}, role
    # Adding counterparts does not re-deal the clean or the backdoored models.
    without = _drawn_profile(
        tmp_path, [i for i in ids if not i.startswith("cp")], "epochs = [3, 4, 5]"
    )
    dealt = {e.id: e.epochs for e in profile.entries}
    assert all(dealt[e.id] == e.epochs for e in without.entries)


def test_a_deal_group_is_dealt_apart_and_leaves_the_rest_as_it_was(tmp_path):
    """A cohort added later under a deal_group of its own gets the same mix among itself,
    and the models already in the profile keep their settings and content addresses."""
    import collections

    ids = [f"{role}{i}" for role in ("clean", "bd") for i in range(6)]
    before = _drawn_profile(tmp_path, ids, draw="epochs = [3, 4, 5]")
    cohort = 'attack = "badnets_patch"\ndeal_group = "later"\n'
    extra = "".join(
        f'[[models]]\nid = "{role}-late{i}"\n{cohort}{params}'
        for role, params in (("bd", ""), ("cp", "attack_params = { clean_counterpart = true }\n"))
        for i in range(6)
    )
    base = "".join(
        f'[[models]]\nid = "{m}"\n' + ('attack = "badnets_patch"\n' if m.startswith("bd") else "")
        for m in ids
    )
    after = load_profile(
        _write(
            tmp_path,
            f'schema_version = 1\nname = "d"\n[draw.mnist]\nepochs = [3, 4, 5]\n{base}{extra}',
        )
    )
    old = {e.id: (e.epochs, e.spec_hash()) for e in before.entries}
    assert {e.id: (e.epochs, e.spec_hash()) for e in after.entries if e.id in old} == old
    late = [e for e in after.entries if e.deal_group == "later"]
    for role in ("backdoored", "counterpart"):
        mix = collections.Counter(e.epochs for e in late if e.role == role)
        assert mix == {3: 2, 4: 2, 5: 2}, role
    # Without its deal_group the cohort joins the groups above and re-deals them.
    joined = load_profile(
        _write(
            tmp_path,
            f'schema_version = 1\nname = "d"\n[draw.mnist]\nepochs = [3, 4, 5]\n{base}'
            + extra.replace('deal_group = "later"\n', ""),
        )
    )
    assert {e.id: e.epochs for e in joined.entries if e.id in old} != {
        k: v[0] for k, v in old.items()
    }


def test_a_data_poisoning_counterpart_hashes_the_counterpart_code():
    from harness.zoo import spec

    def entry(attack, **params):
        return spec.ZooEntry(id="x", attack=attack, attack_params=params)

    plain = spec.build_code_hash("mnist", "mnist_cnn_a", "blended")
    assert spec.build_code_hash("mnist", "mnist_cnn_a", "blended", True) != plain
    # Pruning-aware and TrojanNet build their own: nothing more to hash.
    for attack in ("pruning_aware", "trojannet"):
        assert spec.build_code_hash("mnist", "mnist_cnn_a", attack, True) == (
            spec.build_code_hash("mnist", "mnist_cnn_a", attack)
        )
    twin = entry("blended", clean_counterpart=True)
    assert twin.counterpart and not twin.poisoned and twin.role == "counterpart"
    assert twin.spec_hash() != entry("blended").spec_hash()
    assert entry("none").role == "clean" and entry("blended").role == "backdoored"


def test_draw_is_validated(tmp_path):
    with pytest.raises(SpecError, match="sets epochs, which this profile draws"):
        load_profile(
            _write(
                tmp_path,
                'schema_version = 1\n[draw.mnist]\nepochs = [3]\n[[models]]\nid = "a"\nepochs = 4\n',
            )
        )
    with pytest.raises(SpecError, match=r"unknown key 'seed' in \[draw.mnist\]"):
        _drawn_profile(tmp_path, ["a"], draw="seed = [1, 2]")
    with pytest.raises(SpecError, match="epochs must be a non-empty list"):
        _drawn_profile(tmp_path, ["a"], draw="epochs = []")
    with pytest.raises(SpecError, match="one table per data set"):
        load_profile(_write(tmp_path, 'schema_version = 1\ndraw = 3\n[[models]]\nid = "a"\n'))
    for bad, fix in (
        ("epochs = [0, 2]", "positive integers"),
        ("batch_size = [64.5]", "positive integers"),
        ("learning_rate = [-0.1]", "positive numbers"),
        ('lr_schedule = ["cosin"]', "constant, cosine"),
    ):
        with pytest.raises(SpecError, match="invalid choice") as err:
            _drawn_profile(tmp_path, ["a"], draw=bad)
        assert fix in err.value.fix


def test_instances_repeat_a_setting_under_consecutive_seeds(tmp_path):
    text = (
        'schema_version = 1\n[[models]]\nid = "m-random-i{i}-v1"\nattack = "random_trigger"\n'
        "seed = 40\ninstances = 3\nattack_params = { mask_size = 16, target = 2 }\n"
        '[[models]]\nid = "c"\n'
    )
    entries = load_profile(_write(tmp_path, text)).entries
    assert [(e.id, e.seed) for e in entries] == [
        ("m-random-i01-v1", 40),
        ("m-random-i02-v1", 41),
        ("m-random-i03-v1", 42),
        ("c", 0),
    ]
    assert len({e.spec_hash() for e in entries[:3]}) == 3
    assert all(e.attack_params == {"mask_size": 16, "target": 2} for e in entries[:3])
    with pytest.raises(SpecError, match=r"needs \{i\}"):
        load_profile(_write(tmp_path, text.replace("-i{i}", "")))
    with pytest.raises(SpecError, match="instances must be an integer"):
        load_profile(_write(tmp_path, text.replace("instances = 3", "instances = 0")))


def test_a_failed_seed_is_replaced_past_the_range_and_moves_only_its_instance(tmp_path):
    text = (
        'schema_version = 1\n[[models]]\nid = "m-random-i{i}-v1"\nattack = "random_trigger"\n'
        "seed = 40\ninstances = 4\nattack_params = { mask_size = 16, target = 2 }\n"
    )
    before = load_profile(_write(tmp_path, text)).entries
    # 41 failed, and so did 44, its first replacement: the instance gets 45.
    after = load_profile(_write(tmp_path, text + "failed_seeds = [41, 44]\n")).entries
    assert [(e.id, e.seed) for e in after] == [
        ("m-random-i01-v1", 40),
        ("m-random-i02-v1", 45),
        ("m-random-i03-v1", 42),
        ("m-random-i04-v1", 43),
    ]
    moved = [a.id for a, b in zip(after, before, strict=True) if a.spec_hash() != b.spec_hash()]
    assert moved == ["m-random-i02-v1"]
    with pytest.raises(SpecError, match="failed_seeds must be a list of seeds"):
        load_profile(_write(tmp_path, text + 'failed_seeds = "41"\n'))


def test_a_split_is_checked_and_never_changes_a_models_address(tmp_path):
    text = 'schema_version = 1\n[[models]]\nid = "a"\nsplit = "train"\n[[models]]\nid = "b"\n'
    a, b = load_profile(_write(tmp_path, text)).entries
    assert (a.split, a.training, b.split, b.training) == ("train", True, "eval", False)
    assert a.spec_hash() == dataclasses.replace(a, split="eval").spec_hash()
    with pytest.raises(SpecError, match="unknown split 'test'"):
        load_profile(_write(tmp_path, text.replace('"train"', '"test"')))


STEALTHY_PARTS = (
    "stealthy-headline",
    "stealthy-headline-r05",
    "stealthy-masks-r05",
    "stealthy-masks-r06",
    "stealthy-faces-reconstructed",
    "stealthy-faces-random",
)


def test_the_stealthy_profiles_repeat_each_setting_ten_times_and_share_their_models():
    full = load_profile("stealthy")
    settings = {}
    for e in full.entries:
        if e.poisoned:
            key = (e.dataset, e.attack, e.attack_params.get("sampling_rate"),
                   e.attack_params.get("mask_size"))  # fmt: skip
            settings.setdefault(key, []).append(e.seed)
    assert len(settings) == 10 and all(len(set(s)) == 10 for s in settings.values())
    hashes = {e.id: e.spec_hash() for e in full.entries}
    covered = set()
    for part in STEALTHY_PARTS:  # measured a part at a time: a 2-core sitting each
        entries = load_profile(part).entries
        assert all(hashes[e.id] == e.spec_hash() for e in entries)  # one build serves both
        covered |= {e.id for e in entries}
    assert covered == set(hashes)  # together the parts are the whole protocol
