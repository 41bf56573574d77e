"""The deterministic population: stable, bijective lookups, valid INNs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from authload.mock.population import Population, inn_check_digits, inn_is_valid


def test_same_seed_same_people_other_seed_other_people() -> None:
    a, b, c = Population(1000, 1), Population(1000, 1), Population(1000, 2)
    assert a.account(17) == b.account(17)
    assert a.phone(17) != c.phone(17)


def test_phones_and_inns_map_back_to_their_account() -> None:
    pop = Population(20_000, 5)
    phones = {pop.phone(i) for i in range(pop.size)}
    assert len(phones) == pop.size
    for i in range(0, pop.size, 7):
        assert pop.index_of_phone(pop.phone(i)) == i
        assert pop.index_of_phone("+" + pop.phone(i)) == i
        assert pop.index_of_inn(pop.inn(i)) == i
        assert inn_is_valid(pop.inn(i))


@given(st.text(max_size=15))
def test_lookups_never_fail_on_garbage(text: str) -> None:
    pop = Population(100, 1)
    assert pop.index_of_phone(text) is None or pop.phone(pop.index_of_phone(text)) == text.lstrip(
        "+"
    )
    pop.index_of_inn(text)


def test_known_inn_check_digits() -> None:
    # 500100732259: a published example of a valid 12-digit individual INN
    assert inn_check_digits("5001007322") == "59"
    assert inn_is_valid("500100732259")
    assert not inn_is_valid("500100732250")
    fullwidth = "".join(chr(0xFF10 + int(c)) for c in "500100732259")
    assert not inn_is_valid(fullwidth)


def test_outside_population_is_unknown() -> None:
    small, big = Population(10, 1), Population(1000, 1)
    assert small.index_of_phone(big.phone(500)) is None
    assert small.index_of_inn(big.inn(500)) is None
