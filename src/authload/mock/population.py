"""A deterministic test population, computed on demand instead of stored.

Account ``i`` is derived from ``(seed, i)`` alone, and phones and INNs are bijections of the
index, so a phone or INN maps back to its account in O(1) with no table: a population of
millions costs no memory and every process of a scaled-out mock agrees on it.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_PHONE_MOD = 10**9  # "79" + 9 digits
_PHONE_MUL, _PHONE_OFF = 387_420_489, 104_729  # 3**18 is coprime with 10
_INN_MOD = 10**8  # "77" + 8 digits + 2 check digits
_INN_MUL, _INN_OFF = 43_046_721, 7_919  # 3**16
_INN_W11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN_W12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)

_MALE = (
    ("Алексей", "Петров", "Викторович"),
    ("Иван", "Смирнов", "Сергеевич"),
    ("Дмитрий", "Кузнецов", "Андреевич"),
    ("Сергей", "Попов", "Игоревич"),
    ("Андрей", "Соколов", "Павлович"),
    ("Михаил", "Лебедев", "Олегович"),
)
_FEMALE = (
    ("Анна", "Петрова", "Викторовна"),
    ("Мария", "Смирнова", "Сергеевна"),
    ("Елена", "Кузнецова", "Андреевна"),
    ("Ольга", "Попова", "Игоревна"),
    ("Татьяна", "Соколова", "Павловна"),
    ("Наталья", "Лебедева", "Олеговна"),
)
_REGIONS = (
    ("Новосибирская область", "город Новосибирск", "630073"),
    ("Московская область", "город Химки", "141400"),
    ("Свердловская область", "город Екатеринбург", "620014"),
    ("Республика Татарстан", "город Казань", "420111"),
)
_STREETS = ("Новогодняя ул.", "Ленина ул.", "Мира пр-т", "Садовая ул.", "Лесная ул.")
_MANAGERS = (
    (1, "Артём", "Полищук", "Николаевич"),
    (2, "Ирина", "Волкова", "Алексеевна"),
    (3, "Павел", "Орлов", None),
)
_TYPES = ((1, "Опт"), (2, "Розница"))
_EPOCH = datetime(2024, 3, 1, tzinfo=UTC)


def inn_check_digits(first10: str) -> str:
    digits = [int(c) for c in first10]
    n11 = sum(w * d for w, d in zip(_INN_W11, digits, strict=True)) % 11 % 10
    n12 = sum(w * d for w, d in zip(_INN_W12, [*digits, n11], strict=True)) % 11 % 10
    return f"{n11}{n12}"


def inn_is_valid(inn: str) -> bool:
    """A 12-digit individual INN with correct check digits."""
    return (
        len(inn) == 12
        and inn.isascii()
        and inn.isdigit()
        and (inn_check_digits(inn[:10]) == inn[10:])
    )


def timestamp(dt: datetime) -> str:
    """Laravel's JSON timestamp: 2024-03-23T10:27:06.000000Z."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


@dataclass(frozen=True)
class Manager:
    id: int
    first_name: str
    last_name: str
    middle_name: str | None


@dataclass(frozen=True)
class Account:
    index: int
    id: int
    phone: str
    phone_2: str
    inn: str
    lkfl_password: str
    first_name: str
    last_name: str
    middle_name: str
    birthday: str
    region: str
    address: str
    email: str
    devices: int
    type_id: int
    type_name: str
    manager: Manager
    created_at: str
    updated_at: str


class Population:
    def __init__(self, size: int, seed: int) -> None:
        if size > _INN_MOD:
            raise ValueError(f"population size is at most {_INN_MOD}")
        self.size = size
        self.seed = seed
        self._key = f"authload-population-{seed}".encode()
        self._phone_inv = pow(_PHONE_MUL, -1, _PHONE_MOD)
        self._inn_inv = pow(_INN_MUL, -1, _INN_MOD)
        self.account = lru_cache(maxsize=65_536)(self._build)

    def phone(self, index: int) -> str:
        return f"79{(index * _PHONE_MUL + _PHONE_OFF + self.seed) % _PHONE_MOD:09d}"

    def inn(self, index: int) -> str:
        first10 = f"77{(index * _INN_MUL + _INN_OFF + self.seed) % _INN_MOD:08d}"
        return first10 + inn_check_digits(first10)

    def index_of_phone(self, phone: str) -> int | None:
        """Account index for "7XXXXXXXXXX" or "+7XXXXXXXXXX", None if not in the population."""
        phone = phone.removeprefix("+")
        if len(phone) != 11 or not phone.startswith("79") or not phone.isdigit():
            return None
        index = ((int(phone[2:]) - _PHONE_OFF - self.seed) * self._phone_inv) % _PHONE_MOD
        return index if index < self.size else None

    def index_of_inn(self, inn: str) -> int | None:
        if not inn.startswith("77") or not inn_is_valid(inn):
            return None
        index = ((int(inn[2:10]) - _INN_OFF - self.seed) * self._inn_inv) % _INN_MOD
        return index if index < self.size else None

    def lkfl_password(self, index: int) -> str:
        digest = hmac.new(self._key, f"lkfl:{index}".encode(), hashlib.sha256).digest()
        alphabet = string.ascii_letters + string.digits
        return "".join(alphabet[b % len(alphabet)] for b in digest[:10])

    def _build(self, index: int) -> Account:
        if not 0 <= index < self.size:
            raise IndexError(f"account {index} is outside the population of {self.size}")
        rng = random.Random(f"{self.seed}:{index}")
        first, last, middle = rng.choice(_MALE if rng.random() < 0.5 else _FEMALE)
        region, city, postcode = rng.choice(_REGIONS)
        street = rng.choice(_STREETS)
        address = (
            f"{postcode}, {region}, {city}, {street}, д. {rng.randint(1, 120)}, "
            f"кв. {rng.randint(1, 300)}"
        )
        birthday = datetime(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 55))
        created = _EPOCH + timedelta(seconds=rng.randint(0, 180 * 86_400))
        updated = created + timedelta(seconds=rng.randint(0, 30 * 86_400))
        type_id, type_name = rng.choice(_TYPES)
        m_id, m_first, m_last, m_middle = rng.choice(_MANAGERS)
        draw = rng.random()
        return Account(
            index=index,
            id=index + 1,
            phone=self.phone(index),
            phone_2=f"78{rng.randrange(10**9):09d}",
            inn=self.inn(index),
            lkfl_password=self.lkfl_password(index),
            first_name=first,
            last_name=last,
            middle_name=middle,
            birthday=birthday.strftime("%Y-%m-%d"),
            region=region,
            address=address,
            email=f"user{index + 1}@example.test",
            devices=1 if draw < 0.6 else 2 if draw < 0.9 else 3,
            type_id=type_id,
            type_name=type_name,
            manager=Manager(m_id, m_first, m_last, m_middle),
            created_at=timestamp(created),
            updated_at=timestamp(updated),
        )
