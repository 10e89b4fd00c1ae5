import pytest

from mcal_utils import profiles


def test_every_notebook_entry_is_complete_and_well_typed():
    profiles.validate_all()


@pytest.mark.parametrize("notebook", sorted(profiles.NOTEBOOKS))
@pytest.mark.parametrize("name", profiles.PROFILE_NAMES)
def test_resolve_returns_the_profile_values(notebook, name):
    s = profiles.resolve(notebook, name)
    assert s.profile == name and s.notebook == notebook
    expected = {k: tuple(v) if isinstance(v, list) else v for k, v in profiles.NOTEBOOKS[notebook][name].items()}
    assert s.as_dict() == expected


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown profile 'fast'.*'smoke', 'default', 'paper'"):
        profiles.resolve("00_data_prep", "fast")


def test_unknown_profile_from_environment(monkeypatch):
    monkeypatch.setenv("MCAL_PROFILE", "quick")
    with pytest.raises(ValueError, match=r"from \$MCAL_PROFILE"):
        profiles.resolve("00_data_prep")


def test_profile_comes_from_environment_then_default(monkeypatch):
    monkeypatch.delenv("MCAL_PROFILE", raising=False)
    assert profiles.resolve("00_data_prep").profile == "default"
    monkeypatch.setenv("MCAL_PROFILE", "smoke")
    assert profiles.resolve("00_data_prep").profile == "smoke"
    assert profiles.resolve("00_data_prep", "paper").profile == "paper"


def test_unknown_notebook_and_parameter_are_refused():
    with pytest.raises(ValueError, match="unknown notebook"):
        profiles.resolve("99_nope", "smoke")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['nope'\].*valid"):
        profiles.resolve("00_data_prep", "smoke", nope=1)


def test_override_values_are_type_checked():
    s = profiles.resolve("00_data_prep", "smoke", n_show=4)
    assert s.n_show == 4
    with pytest.raises(ValueError, match="invalid n_show='4'.*int"):
        profiles.resolve("00_data_prep", "smoke", n_show="4")
    with pytest.raises(ValueError, match="invalid n_show=True"):
        profiles.resolve("00_data_prep", "smoke", n_show=True)


def test_choices_are_enforced():
    with pytest.raises(ValueError, match=r"invalid dataset='cifar'; valid: one of \['auto'"):
        profiles._check_value("nb", "dataset", "cifar", "auto")


@pytest.mark.parametrize("knob, value, message", [
    ("n_steps", -1, r"invalid n_steps=-1; valid: n_steps >= 0"),
    ("n_seeds", 0, r"invalid n_seeds=0; valid: n_seeds >= 1"),
    ("lr", 0.0, r"invalid lr=0.0; valid: lr > 0.0"),
    ("momentum", 1.0, r"valid: 0.0 <= momentum < 1.0"),
    ("n_candidates", -3, r"valid: n_candidates >= 0 \(0 = all\)"),
    ("windows", (0, 2), r"invalid windows=\(0, 2\); valid: windows >= 1"),
])
def test_ranges_are_enforced_and_named(knob, value, message):
    with pytest.raises(ValueError, match=r"02_strategy_comparison \(profile 'default'\): .*" + message):
        profiles.resolve("02_strategy_comparison", "default", **{knob: value})


def test_issue_example_negative_sizes_are_refused():
    # notebook 01 with n_train=-5 once trained on 47 995 images
    with pytest.raises(ValueError, match=r"invalid n_train=-5; valid: n_train >= 0 \(0 = all\)"):
        profiles.resolve("01_concrete_dropout_model", "smoke", n_train=-5, n_val=0)


@pytest.mark.parametrize("changes, message", [
    (dict(n_steps=4), r"windows=\(5, 10\) exceed n_steps=4"),
    (dict(n_candidates=10), r"n_candidates=10 is smaller than k=20"),
    (dict(pool_size=100), r"= 220 labelled points exceed pool_size=100"),
    (dict(initial_size=25), r"initial_size divisible by the 10 classes"),
    (dict(leave_out=("bald", "entropy_mc")), r"leave_out=\('bald', 'entropy_mc'\) names \['entropy_mc'\], which"),
    (dict(leave_out=("bald",), compare_init=("bald",)), r"compare_init=\('bald',\) names \['bald'\], which leave_out"),
    (dict(leave_out=("chance",)), r"invalid leave_out=\('chance',\)"),
])
def test_cross_checks_name_both_knobs(changes, message):
    with pytest.raises(ValueError, match=message):
        profiles.resolve("02_strategy_comparison", "default", **changes)


def test_rule_accepts_and_describes():
    r = profiles.Rule(gt=0.0, lt=1.0)
    assert r.accepts(0.5) and not r.accepts(0.0) and not r.accepts(1.0) and not r.accepts("0.5")
    assert r.describe("p") == "0.0 < p < 1.0"
    assert profiles.Rule(ge=1).accepts((1, 2)) and not profiles.Rule(ge=1).accepts((1, 0))
    assert profiles.Rule().describe() == "any value"


def test_resolve_parameters_reads_the_notebook_namespace(monkeypatch):
    monkeypatch.delenv("MCAL_PROFILE", raising=False)
    namespace = {"profile": "smoke", "n_show": 3, "seed": None, "profiles": profiles, "_": 1, "Out": {}}
    s = profiles.resolve_parameters("00_data_prep", namespace)
    assert s.profile == "smoke" and s.n_show == 3
    assert s.seed == profiles.NOTEBOOKS["00_data_prep"]["smoke"]["seed"]  # None -> the profile's value
    assert profiles.resolve_parameters("00_data_prep", {}).profile == "default"
    with pytest.raises(ValueError, match=r"00_data_prep \(profile 'smoke'\): invalid n_show=0"):
        profiles.resolve_parameters("00_data_prep", {"profile": "smoke", "n_show": 0})
    with pytest.raises(ValueError, match="unknown notebook"):
        profiles.resolve_parameters("99_nope", {})


def test_resolve_parameters_refuses_names_that_are_not_knobs(monkeypatch):
    """``papermill -p n_sedes 3`` must not run with the defaults: the name, the closest knob, the notebook."""
    monkeypatch.delenv("MCAL_PROFILE", raising=False)
    with pytest.raises(ValueError, match=r"02_strategy_comparison: unknown parameter\(s\) 'n_sedes' \(did you mean "
                                         r"'n_seeds'\?\): not knobs.*Valid: profile, .*n_seeds"):
        profiles.resolve_parameters("02_strategy_comparison", {"profile": "smoke", "n_sedes": 3})
    # modules, functions, classes, IPython's and private names are not parameters
    ok = {"profiles": profiles, "f": len, "C": dict, "_i1": "x", "In": [], "Out": {}, "get_ipython": print}
    assert profiles.resolve_parameters("02_strategy_comparison", ok).profile == "default"


def test_resolve_parameters_in_a_kernel_reads_the_injected_cells_only(monkeypatch):
    """In a kernel (``In``: the executed sources) only the parameters cell and papermill's injected
    cells count, so re-running the resolve cell after later cells (``SEEDS = ...``) still works."""
    import json
    from pathlib import Path

    monkeypatch.delenv("MCAL_PROFILE", raising=False)
    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        code = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        namespace = dict.fromkeys(profiles._cell_parameters(code[0]))  # the parameters cell: `knob = None` lines
        injected = '# Parameters\nprofile = "smoke"\n'
        namespace.update(profile="smoke", profiles=profiles, In=["", code[0], injected, code[1]],
                         SEEDS=[0, 1], t_start=1.0)  # later globals, as on a re-run
        assert profiles.resolve_parameters(path.stem, namespace).profile == "smoke", path.name
        typo = dict(namespace, In=["", code[0], injected + "n_sedes = 3\n", code[1]], n_sedes=3)
        with pytest.raises(ValueError, match=rf"{path.stem}: unknown parameter\(s\) 'n_sedes'"):
            profiles.resolve_parameters(path.stem, typo)


def test_unknown_profile_names_the_notebook():
    with pytest.raises(ValueError, match=r"00_data_prep: unknown profile 'fast' \(from argument\)"):
        profiles.resolve_parameters("00_data_prep", {"profile": "fast"})


def test_every_knob_has_a_rule_or_is_boolean():
    """A knob without a range is a knob nobody thought about: booleans and free strings aside."""
    missing = sorted({k for entry in profiles.NOTEBOOKS.values() for k, v in entry["default"].items()
                      if k not in profiles.RULES and not isinstance(v, (bool, str))})
    assert not missing, f"knobs without an entry in profiles.RULES: {missing}"


def test_settings_are_read_only():
    s = profiles.resolve("00_data_prep", "smoke")
    with pytest.raises(AttributeError):
        s.n_show = 3
    with pytest.raises(AttributeError, match="no setting 'nope'"):
        s.nope


def test_an_optional_profile_is_refused_where_a_notebook_lacks_it(monkeypatch):
    lacking = [nb for nb, entry in profiles.NOTEBOOKS.items() if "long" not in entry]
    assert lacking, "every notebook has a long profile: pick another way to test the refusal"
    with pytest.raises(ValueError, match=rf"{lacking[0]} has no 'long' profile"):
        profiles.resolve(lacking[0], "long")
    monkeypatch.setitem(profiles.NOTEBOOKS, "zz_test", {**profiles.NOTEBOOKS[lacking[0]], "bogus": {}})
    with pytest.raises(ValueError, match="may add"):
        profiles.validate_all()
