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
    assert profiles.CHOICES["dataset"]
    with pytest.raises(ValueError, match=r"invalid dataset='cifar'; valid values"):
        profiles._check_value("nb", "dataset", "cifar", "auto")


def test_settings_are_read_only():
    s = profiles.resolve("00_data_prep", "smoke")
    with pytest.raises(AttributeError):
        s.n_show = 3
    with pytest.raises(AttributeError, match="no setting 'nope'"):
        s.nope
