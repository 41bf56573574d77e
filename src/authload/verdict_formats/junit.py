"""Suites as JUnit XML, the dialect of Jenkins' ``junit-10.xsd`` that CI systems read
(GitLab's test reports, Jenkins, GitHub test-report actions): ``<testsuites>`` of
``<testsuite>``, each ``<testcase>`` passed, with a ``<failure>`` or ``<skipped>``, its figures
in ``<system-out>``. A failed verdict is always a ``<failure>`` (its ``type`` says which kind:
``slo``, ``gate``, ``invalid``, ``aborted``, ``regression``); ``errors`` is 0."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from authload.verdict_formats.cases import FAILED, SKIPPED, Case, Suite

ROOT_NAME = "authload"


def junit_xml(suites: Sequence[Suite]) -> str:
    """The XML document (UTF-8 text with its declaration) of ``suites``."""
    root = ET.Element(
        "testsuites",
        name=ROOT_NAME,
        tests=str(sum(len(s.cases) for s in suites)),
        failures=str(sum(s.failures for s in suites)),
        errors="0",
        time=seconds(sum(s.duration_s for s in suites)),
    )
    for suite in suites:
        root.append(suite_element(suite))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def suite_element(suite: Suite) -> ET.Element:
    attributes = {
        "name": suite.name,
        "tests": str(len(suite.cases)),
        "failures": str(suite.failures),
        "errors": "0",
        "skipped": str(suite.skipped),
        "time": seconds(suite.duration_s),
    }
    if suite.timestamp:
        attributes["timestamp"] = suite.timestamp
    if suite.report:
        attributes["url"] = suite.report
    element = ET.Element("testsuite", attributes)
    if suite.properties:
        properties = ET.SubElement(element, "properties")
        for key, value in suite.properties.items():
            ET.SubElement(properties, "property", name=key, value=value)
    for case in suite.cases:
        element.append(case_element(case))
    out = f"verdict: {suite.verdict}" + (f"\nreport: {suite.report}" if suite.report else "")
    ET.SubElement(element, "system-out").text = out
    return element


def case_element(case: Case) -> ET.Element:
    element = ET.Element(
        "testcase", name=case.name, classname=f"{ROOT_NAME}.{case.group}", time="0"
    )
    if case.outcome == FAILED:
        failure = ET.SubElement(element, "failure", type=case.kind or "failed")
        failure.set("message", case.message)
        failure.text = figures(case)
    elif case.outcome == SKIPPED:
        ET.SubElement(element, "skipped", message=case.message)
    ET.SubElement(element, "system-out").text = figures(case)
    return element


def figures(case: Case) -> str:
    lines = [
        f"endpoint: {case.endpoint or '-'}",
        f"measured: {case.value}",
        f"threshold: {case.threshold}",
    ]
    if case.detail:
        lines.append(f"detail: {case.detail}")
    return "\n".join(lines)


def seconds(value: float) -> str:
    """``time`` as junit-10.xsd allows it: at most three decimals."""
    return f"{max(value, 0.0):.3f}"
