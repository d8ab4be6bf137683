"""The options table drives every place a generation option can be given: the command
line, the config file, chat's `/set` and batch lines take the same options, with the
same bounds, and turn away the same out-of-range values."""

from __future__ import annotations

import functools
import json
import re

import pytest
import typer
from typer import BadParameter
from typer._click import Command
from typer._click.types import FloatRange, IntRange
from typer.core import TyperGroup, TyperOption

from llmcli import batch, config
from llmcli.chat import settings
from llmcli.cli import app
from llmcli.commands import _invocation
from llmcli.config import options_table
from llmcli.config.options_table import TABLE, Option
from llmcli.engine.types import Sampling

NUMERIC = [o for o in TABLE if o.kind in (int, float)]


@functools.cache
def _root() -> TyperGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return group


def _command(name: str) -> Command:
    return _root().commands[name]


def _param(command: Command, name: str) -> TyperOption:
    found = [p for p in command.params if isinstance(p, TyperOption) and p.name == name]
    assert found, f"{command.name} has no option {name}"
    return found[0]


def _inside(option: Option) -> int | float:
    """A value within the option's bounds, not its default."""
    low = option.minimum if option.minimum is not None else 0
    return option.kind(low + 1 if option.maximum is None or option.maximum >= low + 1 else low)


def _outside(option: Option) -> int | float:
    if option.maximum is not None:
        return option.kind(option.maximum + 1)
    assert option.minimum is not None
    return option.kind(option.minimum - 1)


def _names_bound(option: Option, message: str) -> bool:
    """The message names the bound the value crossed (as written, or as `:g` writes it)."""
    bound = option.maximum if option.maximum is not None else option.minimum
    assert bound is not None
    return str(bound) in message or f"{bound:g}" in message


def test_every_option_is_a_command_line_option_with_the_tables_flags_bounds_and_help() -> None:
    for option in TABLE:
        param = _param(_command("run"), option.name)
        flags = [*param.opts, *param.secondary_opts]
        declared = [f for spec in option.flags for f in spec.split("/")]
        assert sorted(flags) == sorted(declared)
        assert param.help == option.help
        if option.kind in (int, float):
            assert isinstance(param.type, (IntRange, FloatRange))
            assert (param.type.min, param.type.max) == (option.minimum, option.maximum)


def test_the_sampling_options_are_on_every_command_that_generates() -> None:
    for command in ("run", "chat", "serve"):
        for option in options_table.SAMPLING:
            assert _param(_command(command), option.name).help == option.help


@pytest.mark.parametrize("option", NUMERIC, ids=lambda o: o.name)
def test_the_command_line_turns_away_what_is_out_of_bounds(option: Option) -> None:
    flag = option.flags[0]
    value = _outside(option)
    with pytest.raises(BadParameter) as caught:
        _command("run").make_context("run", [flag, str(value), "Hi"])
    assert _names_bound(option, caught.value.format_message())
    _command("run").make_context("run", [flag, str(_inside(option)), "Hi"])


@pytest.mark.parametrize("option", NUMERIC, ids=lambda o: o.name)
def test_the_config_file_takes_the_tables_options_with_the_same_bounds(option: Option) -> None:
    assert option.name in config.OPTIONS
    assert config.coerce_option(option.name, str(_inside(option))) == _inside(option)
    with pytest.raises(ValueError) as caught:
        config.coerce_option(option.name, _outside(option))
    assert _names_bound(option, str(caught.value))


def test_the_config_file_checks_on_off_and_text_options_from_the_table() -> None:
    assert config.coerce_option("think", "on") is True
    with pytest.raises(ValueError, match="true or false"):
        config.coerce_option("think", "maybe")
    effort = options_table.BY_NAME["reasoning_effort"]
    assert config.coerce_option("reasoning_effort", "HIGH") == "high"
    with pytest.raises(ValueError, match=", ".join(effort.choices)):
        config.coerce_option("reasoning_effort", "extreme")


SETTABLE = [o for o in TABLE if o.set_name]


def test_chat_and_batches_take_every_sampling_option() -> None:
    sampling = {o.name for o in options_table.SAMPLING}
    assert {o.name for o in SETTABLE} == sampling
    assert {o.name for o in options_table.BATCH.values()} == sampling
    assert list(settings.SETTINGS) == [o.set_name for o in SETTABLE]


@pytest.mark.parametrize("option", SETTABLE, ids=lambda o: o.name)
def test_set_in_chat_takes_the_tables_bounds(option: Option) -> None:
    assert option.set_name is not None
    changed = settings.apply_setting(Sampling(), option.set_name, str(_inside(option)))
    assert getattr(changed, option.name) == _inside(option)
    with pytest.raises(settings.SettingError) as caught:
        settings.apply_setting(Sampling(), option.set_name, str(_outside(option)))
    assert _names_bound(option, str(caught.value))


@pytest.mark.parametrize("option", list(options_table.BATCH.values()), ids=lambda o: o.name)
def test_a_batch_line_takes_the_tables_bounds(option: Option) -> None:
    assert option.batch_field is not None
    line = {"prompt": "Hi", option.batch_field: _inside(option)}
    item = batch.parse_line(0, json.dumps(line))
    assert item.error is None and item.sampling == {option.name: _inside(option)}
    line[option.batch_field] = _outside(option)
    item = batch.parse_line(0, json.dumps(line))
    assert item.error is not None and _names_bound(option, item.error)


def test_one_out_of_range_value_is_refused_by_all_four_with_the_same_bound() -> None:
    messages = [batch.parse_line(0, '{"prompt": "x", "top_p": 1.5}').error or ""]
    with pytest.raises(ValueError) as in_config:
        config.coerce_option("top_p", 1.5)
    with pytest.raises(ValueError) as in_chat:
        settings.apply_setting(Sampling(), "top_p", 1.5)
    with pytest.raises(BadParameter) as on_command_line:
        _command("chat").make_context("chat", ["--top-p", "1.5"])
    messages += [str(in_config.value), str(in_chat.value)]
    messages.append(on_command_line.value.format_message())
    bound = re.compile(r"(?<![\d.])1(\.0)?(?!\d)")  # 1 or 1.0, not 1.5 or 10
    assert all("1.5" in m and bound.search(m.replace("1.5", "")) for m in messages), messages


def test_sampling_is_built_from_the_tables_sampling_options() -> None:
    values = {o.name: _inside(o) for o in options_table.SAMPLING}
    sampling = _invocation.sampling(params=values, stop=["END"])
    assert all(getattr(sampling, name) == value for name, value in values.items())
    assert sampling.stop == ("END",)
    for option in options_table.SAMPLING:
        assert option.default == getattr(Sampling(), option.name)


def test_option_defaults_orders_template_over_model_over_config() -> None:
    merged = options_table.option_defaults(
        params={"temperature", "top_k", "seed", "stop"},
        configurable={"temperature", "top_k", "seed"},
        config={"temperature": 0.1, "top_k": 1, "seed": 1, "ctx": 99},
        model={"top_k": 2, "seed": 2},
        template={"seed": 3, "stop": ["x"]},
    )
    # ctx is not this command's: left out; stop comes from the template alone.
    assert merged == {"temperature": 0.1, "top_k": 2, "seed": 3, "stop": ["x"]}
