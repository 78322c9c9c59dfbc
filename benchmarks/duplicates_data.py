"""The duplicate-scan benchmark's data set: customers with realistic name frequencies and planted duplicates.

The Customer 360 set (``customer360_data.py``) has no duplicates to find and only 100 distinct names, each
shared by 10,000 customers, so every blocking key there is one giant block. This set draws names by a
Zipf-like weight from common Japanese family and given names (with readings), birth dates over 55 years,
random postal codes and street numbers written in two styles, and plants ``dup_rate`` of the rows as a second
record of an earlier person, one of four kinds:

- ``name_phone``: the same person typed with or without the space between the names, the same phone;
- ``name_address``: the same name at the same address, postal code without its hyphen, street as 1丁目2番3号
  instead of 1-2-3 (or back);
- ``kana_birth``: the same reading and birth date, the family name in another kanji (斎藤/斉藤, 渡辺/渡邊);
- ``email_local``: the same e-mail local part at another domain.

Only ``customers`` is loaded (the scan reads nothing else), into the real schema, by ``executemany`` on SQLite
and ``COPY`` on PostgreSQL, with the Customer 360 loader's helpers. The planted pairs are written beside the
SQLite database (``<name>.planted.json``) so the benchmark can say how many the scan found.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from customer360_data import _chunks, _migrate, _pg, _timed

from kizuna.normalize import full_name

BUILD_FORMAT = 1
MARK = "kizuna duplicates benchmark "

# (kanji, reading, romaji); a reading shared by two spellings is how kana_birth duplicates are planted.
FAMILY = [
    ("佐藤", "サトウ", "sato"), ("鈴木", "スズキ", "suzuki"), ("高橋", "タカハシ", "takahashi"),
    ("田中", "タナカ", "tanaka"), ("伊藤", "イトウ", "ito"), ("渡辺", "ワタナベ", "watanabe"),
    ("山本", "ヤマモト", "yamamoto"), ("中村", "ナカムラ", "nakamura"), ("小林", "コバヤシ", "kobayashi"),
    ("加藤", "カトウ", "kato"), ("吉田", "ヨシダ", "yoshida"), ("山田", "ヤマダ", "yamada"),
    ("佐々木", "ササキ", "sasaki"), ("山口", "ヤマグチ", "yamaguchi"), ("松本", "マツモト", "matsumoto"),
    ("井上", "イノウエ", "inoue"), ("木村", "キムラ", "kimura"), ("林", "ハヤシ", "hayashi"),
    ("斎藤", "サイトウ", "saito"), ("清水", "シミズ", "shimizu"), ("山崎", "ヤマザキ", "yamazaki"),
    ("森", "モリ", "mori"), ("池田", "イケダ", "ikeda"), ("橋本", "ハシモト", "hashimoto"),
    ("阿部", "アベ", "abe"), ("石川", "イシカワ", "ishikawa"), ("山下", "ヤマシタ", "yamashita"),
    ("中島", "ナカジマ", "nakajima"), ("石井", "イシイ", "ishii"), ("小川", "オガワ", "ogawa"),
    ("前田", "マエダ", "maeda"), ("岡田", "オカダ", "okada"), ("長谷川", "ハセガワ", "hasegawa"),
    ("藤田", "フジタ", "fujita"), ("後藤", "ゴトウ", "goto"), ("近藤", "コンドウ", "kondo"),
    ("村上", "ムラカミ", "murakami"), ("遠藤", "エンドウ", "endo"), ("青木", "アオキ", "aoki"),
    ("坂本", "サカモト", "sakamoto"), ("斉藤", "サイトウ", "saito"), ("福田", "フクダ", "fukuda"),
    ("太田", "オオタ", "ota"), ("西村", "ニシムラ", "nishimura"), ("藤井", "フジイ", "fujii"),
    ("金子", "カネコ", "kaneko"), ("岡本", "オカモト", "okamoto"), ("藤原", "フジワラ", "fujiwara"),
    ("中野", "ナカノ", "nakano"), ("三浦", "ミウラ", "miura"), ("原田", "ハラダ", "harada"),
    ("松田", "マツダ", "matsuda"), ("竹内", "タケウチ", "takeuchi"), ("小野", "オノ", "ono"),
    ("田村", "タムラ", "tamura"), ("中川", "ナカガワ", "nakagawa"), ("和田", "ワダ", "wada"),
    ("石田", "イシダ", "ishida"), ("上田", "ウエダ", "ueda"), ("森田", "モリタ", "morita"),
]  # fmt: skip
# Other spellings of the same reading, used by kana_birth plants.
VARIANTS = {
    "斎藤": "斉藤",
    "斉藤": "齋藤",
    "渡辺": "渡邊",
    "高橋": "髙橋",
    "山崎": "山﨑",
    "中島": "中嶋",
    "太田": "大田",
}
GIVEN = [
    ("翔太", "ショウタ", "shota"), ("陽菜", "ヒナ", "hina"), ("大翔", "ヒロト", "hiroto"), ("結衣", "ユイ", "yui"),
    ("蓮", "レン", "ren"), ("美咲", "ミサキ", "misaki"), ("悠真", "ユウマ", "yuma"), ("さくら", "サクラ", "sakura"),
    ("健", "ケン", "ken"), ("花子", "ハナコ", "hanako"), ("太郎", "タロウ", "taro"), ("一郎", "イチロウ", "ichiro"),
    ("直樹", "ナオキ", "naoki"), ("恵", "メグミ", "megumi"), ("誠", "マコト", "makoto"), ("裕子", "ユウコ", "yuko"),
    ("隆", "タカシ", "takashi"), ("明美", "アケミ", "akemi"), ("浩", "ヒロシ", "hiroshi"), ("智子", "トモコ", "tomoko"),
    ("大輔", "ダイスケ", "daisuke"), ("由美", "ユミ", "yumi"), ("拓也", "タクヤ", "takuya"), ("愛", "アイ", "ai"),
    ("健太", "ケンタ", "kenta"), ("真由美", "マユミ", "mayumi"), ("翼", "ツバサ", "tsubasa"), ("彩", "アヤ", "aya"),
    ("颯太", "ソウタ", "sota"), ("葵", "アオイ", "aoi"), ("陸", "リク", "riku"), ("凛", "リン", "rin"),
    ("和也", "カズヤ", "kazuya"), ("美穂", "ミホ", "miho"), ("剛", "ツヨシ", "tsuyoshi"), ("舞", "マイ", "mai"),
    ("修", "オサム", "osamu"), ("久美子", "クミコ", "kumiko"), ("悟", "サトル", "satoru"), ("綾香", "アヤカ", "ayaka"),
    ("優", "ユウ", "yu"), ("涼子", "リョウコ", "ryoko"), ("亮", "リョウ", "ryo"), ("千尋", "チヒロ", "chihiro"),
    ("洋平", "ヨウヘイ", "yohei"), ("香織", "カオリ", "kaori"), ("淳", "ジュン", "jun"), ("奈々", "ナナ", "nana"),
]  # fmt: skip
PREFECTURES = [
    ("東京都", "渋谷区"), ("東京都", "世田谷区"), ("大阪府", "大阪市北区"), ("愛知県", "名古屋市中区"),
    ("福岡県", "福岡市博多区"), ("北海道", "札幌市中央区"), ("神奈川県", "横浜市西区"), ("京都府", "京都市下京区"),
    ("埼玉県", "さいたま市大宮区"), ("千葉県", "千葉市中央区"), ("兵庫県", "神戸市中央区"), ("宮城県", "仙台市青葉区"),
]  # fmt: skip
DOMAINS = ["gmail.com", "yahoo.co.jp", "docomo.ne.jp", "ezweb.ne.jp", "icloud.com", "outlook.jp", "example.co.jp"]
KINDS = ("name_phone", "name_address", "kana_birth", "email_local")
COLUMNS = (
    "id", "external_id", "email", "phone", "family_name", "given_name", "family_name_kana", "given_name_kana",
    "full_name", "full_name_kana", "birth_date", "gender", "postal_code", "prefecture", "city", "address_line",
    "country", "lifecycle_stage", "timezone", "locale", "source", "attributes", "status", "merged_into_id",
    "created_at", "updated_at", "version",
)  # fmt: skip


@dataclass(frozen=True)
class Params:
    customers: int
    dup_rate: float
    seed: int

    def marker(self) -> dict[str, object]:
        return {"customers": self.customers, "dup_rate": self.dup_rate, "seed": self.seed, "format": BUILD_FORMAT}

    @property
    def name(self) -> str:
        return f"dups_c{self.customers}_d{int(self.dup_rate * 1000)}_s{self.seed}_v{BUILD_FORMAT}"


def _weights(n: int) -> list[float]:
    return [1 / (rank + 1) ** 0.8 for rank in range(n)]


@dataclass
class Person:
    family: tuple[str, str, str]
    given: tuple[str, str, str]
    birth: dt.date
    phone: str | None
    local: str
    domain: str
    postal: tuple[int, int]
    place: tuple[str, str]
    street: tuple[int, int, int]


def _street(street: tuple[int, int, int], kanji: bool) -> str:
    a, b, c = street
    return f"{a}丁目{b}番{c}号" if kanji else f"{a}-{b}-{c}"


def generate(p: Params, planted: list[tuple[int, int, str]]) -> Iterator[tuple]:
    """The customers' rows in COLUMNS order; ``planted`` receives (original id, duplicate id, kind)."""
    rng = random.Random(p.seed)
    family_w, given_w = _weights(len(FAMILY)), _weights(len(GIVEN))
    recent: list[tuple[int, Person]] = []
    start = dt.date(1950, 1, 1)
    created = "2025-01-01 00:00:00.000000"
    for i in range(1, p.customers + 1):
        kind = None
        if recent and rng.random() < p.dup_rate:
            original_id, person = recent[rng.randrange(len(recent))]
            kind = KINDS[i % len(KINDS)]
            if kind == "name_phone" and person.phone is None:
                kind = "name_address"
            planted.append((original_id, i, kind))
        else:
            person = Person(
                family=rng.choices(FAMILY, family_w)[0],
                given=rng.choices(GIVEN, given_w)[0],
                birth=start + dt.timedelta(days=rng.randrange(55 * 365)),
                phone=f"+8190{rng.randrange(10**8):08d}" if rng.random() < 0.6 else None,
                local="",
                domain=rng.choice(DOMAINS),
                postal=(rng.randrange(100, 1000), rng.randrange(10000)),
                place=rng.choice(PREFECTURES),
                street=(rng.randrange(1, 6), rng.randrange(1, 31), rng.randrange(1, 21)),
            )
            person.local = f"{person.given[2]}.{person.family[2]}{rng.randrange(100000)}"
            recent.append((i, person))
            if len(recent) > 200_000:
                recent.pop(rng.randrange(len(recent)))
        family, given = person.family[0], person.given[0]
        phone, email = person.phone, f"{person.local}@{person.domain}"
        postal = f"{person.postal[0]:03d}-{person.postal[1]:04d}"
        street = _street(person.street, kanji=i % 2 == 0)
        place = person.place
        if kind == "name_phone":
            family, given = family + given, None  # typed without the space, all in the family name field
            email, postal = None, f"{rng.randrange(100, 1000):03d}-{rng.randrange(10000):04d}"
        elif kind == "name_address":
            postal, street = postal.replace("-", ""), _street(person.street, kanji=i % 2 == 1)
            phone, email = None, None
        elif kind == "kana_birth":
            family = VARIANTS.get(family, family)
            phone, email, postal = None, None, f"{rng.randrange(100, 1000):03d}-{rng.randrange(10000):04d}"
        elif kind == "email_local":
            email = f"{person.local}@{next(d for d in DOMAINS if d != person.domain)}"
            phone, postal = None, f"{rng.randrange(100, 1000):03d}-{rng.randrange(10000):04d}"
        family_kana, given_kana = person.family[1], person.given[1]
        if given is None:
            family_kana, given_kana = family_kana + given_kana, None
        yield (
            i, f"D{i:08d}", email, phone, family, given, family_kana, given_kana, full_name(family, given),
            full_name(family_kana, given_kana), person.birth.isoformat(), ("female", "male")[i % 2], postal,
            place[0], place[1], street, "JP", "customer", "Asia/Tokyo", "ja", "bench", "{}", "active", None,
            created, created, 1,
        )  # fmt: skip


def _planted_path(data: Path, p: Params) -> Path:
    return data / f"{p.name}.planted.json"


def planted_pairs(data: Path, p: Params) -> list[tuple[int, int, str]]:
    return [tuple(x) for x in json.loads(_planted_path(data, p).read_text())]


def sqlite_database(data: Path, p: Params, *, rebuild: bool) -> str:
    db, marker = data / f"{p.name}.db", data / f"{p.name}.json"
    if rebuild or not db.exists() or not marker.exists() or json.loads(marker.read_text()) != p.marker():
        marker.unlink(missing_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        print(f"building {db.name}: {p.customers:,} customers, {p.dup_rate:.1%} planted duplicates", flush=True)
        _migrate(f"sqlite:///{db}")
        started = time.perf_counter()
        con = sqlite3.connect(db, isolation_level="DEFERRED")
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        indexes = con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name = 'customers'"
        ).fetchall()
        for name, _ in indexes:
            con.execute(f'DROP INDEX "{name}"')
        planted: list[tuple[int, int, str]] = []
        sql = f"INSERT INTO customers ({', '.join(COLUMNS)}) VALUES ({','.join('?' * len(COLUMNS))})"

        def load() -> int:
            count = 0
            for batch in _chunks(generate(p, planted)):
                con.executemany(sql, batch)
                count += len(batch)
            con.commit()
            return count

        _timed("customers", load)
        for _, index in indexes:
            con.execute(index)
        con.commit()
        con.execute("PRAGMA journal_mode=WAL")
        con.close()
        _planted_path(data, p).write_text(json.dumps(planted))
        marker.write_text(json.dumps(p.marker()))
        print(f"built in {time.perf_counter() - started:.0f} s ({db.stat().st_size / 1e9:.2f} GB)", flush=True)
    else:
        print(f"reusing {db} ({db.stat().st_size / 1e9:.2f} GB)")
    return f"sqlite:///{db}"


def postgresql_database(url: str, data: Path, p: Params, *, schema: str, rebuild: bool) -> str:
    """``url``'s database with search path ``schema``, holding this data set (built unless it already does)."""
    from psycopg import sql
    from sqlalchemy.engine import make_url

    url = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    with _pg(url, autocommit=True) as con:
        found = con.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')", (f'"{schema}".customers',)
        ).fetchone()
        tables_there = con.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)).fetchone()[0]
    comment = found[0] if found else None
    ours = bool(comment and comment.startswith(MARK))
    if tables_there and not ours:
        raise SystemExit(f"schema {schema} holds tables that this benchmark did not build; name another")
    if not rebuild and ours and json.loads(comment[len(MARK) :]) == p.marker() and _planted_path(data, p).exists():
        print(f"reusing PostgreSQL schema {schema} ({p.name})")
        return url
    print(f"building PostgreSQL {schema}: {p.customers:,} customers", flush=True)
    with _pg(url, autocommit=True) as con:
        con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    _migrate(url)
    planted: list[tuple[int, int, str]] = []
    with _pg(url) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET session_replication_role = replica")

        def load() -> int:
            count = 0
            with con.cursor().copy(f"COPY customers ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for batch in _chunks(generate(p, planted), 20_000):
                    copy.write(
                        "".join(["\t".join([r"\N" if v is None else str(v) for v in row]) + "\n" for row in batch])
                    )
                    count += len(batch)
            con.commit()
            return count

        _timed("customers", load)
        con.execute(
            "SELECT setval(pg_get_serial_sequence('customers', 'id'), (SELECT max(id) FROM customers) + 1, false)"
        )
        con.execute(sql.SQL("COMMENT ON TABLE customers IS {}").format(sql.Literal(MARK + json.dumps(p.marker()))))
        con.commit()
    with _pg(url, autocommit=True) as con:
        con.execute("VACUUM ANALYZE customers")
    _planted_path(data, p).write_text(json.dumps(planted))
    return url
