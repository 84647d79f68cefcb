"""Turn a compiled OCSF schema into a JSON Schema for one event class.

    pip install ocsf-lib==0.10.4
    git clone https://github.com/ocsf/ocsf-schema && git -C ocsf-schema checkout v1.8.0
    python -m ocsf.compile ocsf-schema --ignore-extension linux windows macos > ocsf-1.8.0.json
    python schemas/ocsf/gen.py ocsf-1.8.0.json detection_finding ocsf-schema > schemas/ocsf/detection_finding-1.8.0.schema.json

Rules: an attribute is a property of its class or object; its OCSF type becomes the JSON type of its base type
(with the type's regular expression, if any); an object type becomes a reference to that object's definition; `_id`
enumerations list their values; the root `object` type stays open; attributes the schema marks `required` are required, except those that come from a
profile (they are required only of events that declare the profile, and Quench declares none); an object's
`at_least_one` and `just_one` constraints become `anyOf` / `oneOf`; and no other property is allowed, so a
misspelled attribute fails.

Constraints are read from the repository's object files (an object's own, else the nearest it extends): ocsf-lib
0.10.4 gives every object that extends `_entity` the `_entity` constraint (`name` or `uid`) in place of its own.
"""

import json
import os
import sys

BASE = {
    "string_t": {"type": "string"},
    "integer_t": {"type": "integer"},
    "long_t": {"type": "integer"},
    "float_t": {"type": "number"},
    "boolean_t": {"type": "boolean"},
    "json_t": {},
    "object_t": {"type": "object"},
}


def scalar(types, name):
    if name in BASE:
        return dict(BASE[name])
    t = types[name]
    out = scalar(types, t["type"]) if t.get("type") and t["type"] != name else {"type": "string"}
    if t.get("regex"):
        out["pattern"] = t["regex"]
    if t.get("max_len"):
        out["maxLength"] = t["max_len"]
    return out


def attribute(schema, a, wanted):
    t = a.get("type")
    if t in schema["objects"]:
        wanted.add(t)
        one = {"$ref": f"#/$defs/{t}"}
    elif a.get("object_type"):
        wanted.add(a["object_type"])
        one = {"$ref": f"#/$defs/{a['object_type']}"}
    else:
        one = scalar(schema["types"], t)
        if a.get("enum") and t in ("integer_t", "long_t"):
            one["enum"] = sorted(int(k) for k in a["enum"])
    if a.get("is_array"):
        return {"type": "array", "items": one}
    return one


SOURCES = {}


def load_sources(repo):
    for d in ("objects", "events"):
        for root, _, files in os.walk(os.path.join(repo, d)):
            for f in files:
                if f.endswith(".json"):
                    j = json.load(open(os.path.join(root, f)))
                    if "name" in j:
                        SOURCES.setdefault((d, j["name"]), j)


def constraints(kind, name):
    seen = set()
    while name and (kind, name) not in seen:
        seen.add((kind, name))
        src = SOURCES.get((kind, name))
        if src is None:
            return {}
        if src.get("constraints"):
            return src["constraints"]
        name = src.get("extends")
    return {}


def record(schema, rec, wanted, kind, name):
    props, required = {}, []
    for attr, a in sorted(rec["attributes"].items()):
        props[attr] = attribute(schema, a, wanted)
        if a.get("requirement") == "required" and not a.get("profile"):
            required.append(attr)
    # the root `object` type (`unmapped`, `data` of some objects) is OCSF's open object: anything goes in it
    out = {"type": "object", "properties": props}
    if name != "object":
        out["additionalProperties"] = False
    if required:
        out["required"] = required
    c = constraints(kind, name)
    if c.get("at_least_one"):
        out["anyOf"] = [{"required": [k]} for k in c["at_least_one"]]
    if c.get("just_one"):
        out["oneOf"] = [{"required": [k]} for k in c["just_one"]]
    return out


def main():
    schema = json.load(open(sys.argv[1]))
    cls = schema["classes"][sys.argv[2]]
    wanted, done, defs = set(), set(), {}
    load_sources(sys.argv[3])
    top = record(schema, cls, wanted, "events", sys.argv[2])
    while wanted - done:
        name = sorted(wanted - done)[0]
        done.add(name)
        defs[name] = record(schema, schema["objects"][name], wanted, "objects", name)
    top = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://schema.ocsf.io/{schema['version']}/classes/{sys.argv[2]}",
        "title": f"OCSF {schema['version']} {cls.get('caption', sys.argv[2])} (class {cls['uid']})",
        **top,
        "$defs": defs,
    }
    json.dump(top, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


main()
