"""The ACL table (topics/acls.py): who may write and read each topic, and the queues a
department served per jurisdiction gets. The broker's enforcement of it is tried in
tests/integration/test_secured_kafka.py."""

from __future__ import annotations

from settings import Settings
from streams.reference import load_city
from topics import acls, registry
from topics.admin import bindings


def _city_table(settings: Settings) -> list[acls.Grant]:
    city = load_city(settings.reference_dir)
    return acls.table(settings, city.departments, registry.jurisdictions(city))


def _who(grants: list[acls.Grant], topic: str, operation: str) -> set[str]:
    return {g.principal for g in grants
            if g.resource == "topic" and not g.prefixed and g.name == topic
            and operation in g.operations}


def test_only_gridlinks_own_principals_write_its_topics():
    settings = Settings()
    grants = _city_table(settings)
    for topic in (registry.CASE_COMMANDS,):
        assert _who(grants, topic, "Write") == {acls.WORKER, acls.API}
    for topic in (registry.CASE_EVENTS, registry.COMMAND_ALERTS, registry.DEAD_LETTER,
                  registry.CASE_REPLIES):
        assert _who(grants, topic, "Write") == {acls.WORKER}


def test_each_outside_system_writes_only_its_own_ingest_topic():
    grants = _city_table(Settings())
    for system, ingest in acls.PRODUCERS.items():
        theirs = [g for g in grants if g.principal == system]
        assert [(g.name, g.operations) for g in theirs] == [(ingest, ("Write",))]


def test_each_department_and_unit_reads_only_its_own_queue():
    settings = Settings()
    city = load_city(settings.reference_dir)
    grants = _city_table(settings)
    units = registry.jurisdictions(city)
    assert units["township"], "the demo city has townships"
    for code in city.departments:
        principal = acls.department_principal(code)
        topics = {g.name for g in grants if g.principal == principal and g.resource == "topic"}
        assert topics == {registry.department_topic(code)}
    for code, jurisdictions in units.items():
        for unit in jurisdictions:
            principal = acls.unit_principal(code, unit)
            topics = {g.name for g in grants
                      if g.principal == principal and g.resource == "topic"}
            assert topics == {registry.jurisdiction_topic(code, unit)}


def test_every_topic_topics_create_makes_has_a_writer_and_a_reader():
    settings = Settings()
    city = load_city(settings.reference_dir)
    grants = _city_table(settings)
    for spec in registry.city_topics(settings, city):
        assert _who(grants, spec.name, "Write"), spec.name
        if spec.name != registry.DEAD_LETTER:  # read by operators, as the administrator
            assert _who(grants, spec.name, "Read"), spec.name


def test_the_table_follows_the_topic_prefix_and_app_id():
    grants = _city_table(Settings(topic_prefix="t1.", app_id="gl-a"))
    assert all(g.name.startswith("t1.") for g in grants if g.resource == "topic"
               and not g.prefixed)
    assert {g.name for g in grants if g.resource == "group" and g.principal == acls.WORKER} \
        == {"gl-a", "gl-a-intake", "gl-a-projection"}


def test_bindings_are_one_allow_per_operation():
    grants = acls.placeholder_table(Settings())
    assert len(bindings(grants)) == sum(len(g.operations) for g in grants)


def test_a_township_case_goes_to_the_department_and_its_unit():
    assert registry.queue_topics("township", "371503001002003") == [
        "dept.township", "dept.township.371503001"]
    assert registry.queue_topics("sifa", "371503001002003") == ["dept.sifa"]
    # a case held at county level lies in no township: the department's queue only
    assert registry.queue_topics("township", "371503") == ["dept.township"]


def test_the_printed_table_names_every_principal():
    text = acls.markdown(acls.placeholder_table(Settings()))
    for principal in (acls.WORKER, acls.API, acls.COMMAND_CENTER, *acls.PRODUCERS,
                      "dept-<code>", "dept-township-<township>"):
        assert f"`User:{principal}`" in text
    assert "transactional id" in text
