"""A FlatBuffers schema (`.fbs`) read at run time, and tables written / read from plain dicts.

The TFLite Model Metadata writer (`ghostnet_keras.tflite.metadata`) builds its flatbuffer from
the published schema itself (`metadata_schema.fbs`, shipped beside this module) rather than from
generated code or hand-numbered slots: a table's field ids are its declaration order (a union
field takes two ids, `<name>_type` then `<name>`), and each declaration's `// Added in: X.Y.Z`
comment says which schema version introduced it (what the minimum parser version is derived
from). Encoding and decoding use the `flatbuffers` package's `Builder` and `Table`.

Only what the schema language needs for such a file is supported: `namespace`,
`file_identifier`, `file_extension`, `root_type`, `table`, `enum` and `union` (no `struct`,
`include`, explicit `id:` attributes, or vectors of unions); anything else raises
`SchemaError`.

Values are plain Python: a table is a dict from field name to value, a vector a list, an enum a
member name (or its number), a union a one-key dict `{member_name: table_dict}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flatbuffers
from flatbuffers import number_types
from flatbuffers.table import Table

# Scalar type name -> (flatbuffers number type, Builder method suffix).
SCALARS: dict[str, tuple[Any, str]] = {
    "bool": (number_types.BoolFlags, "Bool"),
    "byte": (number_types.Int8Flags, "Int8"),
    "int8": (number_types.Int8Flags, "Int8"),
    "ubyte": (number_types.Uint8Flags, "Uint8"),
    "uint8": (number_types.Uint8Flags, "Uint8"),
    "short": (number_types.Int16Flags, "Int16"),
    "int16": (number_types.Int16Flags, "Int16"),
    "ushort": (number_types.Uint16Flags, "Uint16"),
    "uint16": (number_types.Uint16Flags, "Uint16"),
    "int": (number_types.Int32Flags, "Int32"),
    "int32": (number_types.Int32Flags, "Int32"),
    "uint": (number_types.Uint32Flags, "Uint32"),
    "uint32": (number_types.Uint32Flags, "Uint32"),
    "long": (number_types.Int64Flags, "Int64"),
    "int64": (number_types.Int64Flags, "Int64"),
    "ulong": (number_types.Uint64Flags, "Uint64"),
    "uint64": (number_types.Uint64Flags, "Uint64"),
    "float": (number_types.Float32Flags, "Float32"),
    "float32": (number_types.Float32Flags, "Float32"),
    "double": (number_types.Float64Flags, "Float64"),
    "float64": (number_types.Float64Flags, "Float64"),
}
BASE_VERSION = "1.0.0"
_ADDED_IN = re.compile(r"//\s*Added in:?\s*(\d+\.\d+\.\d+)")


class SchemaError(ValueError):
    """The schema uses a construct this reader does not support, or a value does not fit it."""


@dataclass(frozen=True)
class Field:
    """A table field: `name:type` (`is_vector` for `[type]`), its first id and `Added in`."""

    name: str
    type: str
    is_vector: bool
    id: int
    added_in: str
    default: str | None = None
    align: int | None = None


@dataclass
class TableDef:
    """A table: its fields in declaration order and its `Added in` version."""

    name: str
    added_in: str
    fields: list[Field] = field(default_factory=list)


@dataclass
class Enum:
    """An enum (`underlying` scalar type) or a union (`underlying` is None, members from 1)."""

    name: str
    underlying: str | None
    added_in: str
    values: dict[str, int] = field(default_factory=dict)
    added: dict[str, str] = field(default_factory=dict)


@dataclass
class Schema:
    """A parsed `.fbs`: tables, enums and unions by name, the root type and file identifier."""

    tables: dict[str, TableDef]
    enums: dict[str, Enum]
    root_type: str
    file_identifier: bytes | None
    version: str | None

    # ----------------------------------------------------------------------------------------
    # Writing

    def encode(self, value: Mapping[str, Any], table: str | None = None) -> bytes:
        """Builds a finished flatbuffer (with the file identifier) of a `table` dict."""
        builder = flatbuffers.Builder(1024)
        root = self._build_table(builder, table or self.root_type, value)
        builder.Finish(root, file_identifier=self.file_identifier)
        return bytes(builder.Output())

    def _build_table(
        self, builder: flatbuffers.Builder, name: str, value: Mapping[str, Any]
    ) -> int:
        table = self.tables[name]
        known = {f.name for f in table.fields}
        unknown = set(value) - known
        if unknown:
            raise SchemaError(
                f"Table {name} has no field(s) {sorted(unknown)}; fields: {sorted(known)}."
            )
        # Children first: a table's offsets must exist before the table is started.
        offsets: dict[str, int] = {}
        for f in table.fields:
            item = value.get(f.name)
            if item is None or (self._is_scalar(f.type) and not f.is_vector):
                continue
            if f.type in self.enums and self.enums[f.type].underlying is None:
                member, body = self._union_member(f, item)
                offsets[f.name] = self._build_table(builder, member, body)
            elif f.is_vector:
                offsets[f.name] = self._build_vector(builder, f, item)
            elif f.type == "string":
                offsets[f.name] = builder.CreateString(str(item))
            elif f.type in self.tables:
                offsets[f.name] = self._build_table(builder, f.type, item)
            else:
                raise SchemaError(f"{name}.{f.name}: unsupported type {f.type}.")
        builder.StartObject(self._slot_count(table))
        for f in table.fields:
            item = value.get(f.name)
            if item is None:
                continue
            if f.name in offsets:
                if f.type in self.enums and self.enums[f.type].underlying is None:
                    member, _ = self._union_member(f, item)
                    builder.PrependUint8Slot(f.id, self.enums[f.type].values[member], 0)
                    builder.PrependUOffsetTRelativeSlot(f.id + 1, offsets[f.name], 0)
                else:
                    builder.PrependUOffsetTRelativeSlot(f.id, offsets[f.name], 0)
                continue
            scalar = self._scalar_of(f.type)
            number = self._number(f, item)
            getattr(builder, f"Prepend{SCALARS[scalar][1]}Slot")(f.id, number, 0)
        return builder.EndObject()

    def _build_vector(self, builder: flatbuffers.Builder, f: Field, items: Any) -> int:
        items = list(items)
        if f.type == "string":
            offsets = [builder.CreateString(str(item)) for item in items]
        elif f.type in self.tables:
            offsets = [self._build_table(builder, f.type, item) for item in items]
        elif self._is_scalar(f.type):
            scalar = self._scalar_of(f.type)
            flags, suffix = SCALARS[scalar]
            builder.StartVector(flags.bytewidth, len(items), max(flags.bytewidth, f.align or 1))
            for item in reversed(items):
                getattr(builder, f"Prepend{suffix}")(self._number(f, item))
            return builder.EndVector()
        else:
            raise SchemaError(f"Vectors of {f.type} are not supported.")
        builder.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            builder.PrependUOffsetTRelative(offset)
        return builder.EndVector()

    # ----------------------------------------------------------------------------------------
    # Reading

    def decode(self, data: bytes, table: str | None = None) -> dict[str, Any]:
        """Reads a finished flatbuffer back into a dict (absent fields are left out)."""
        data = bytes(data)
        if self.file_identifier and data[4:8] != self.file_identifier:
            raise SchemaError(
                f"Not a {self.root_type} flatbuffer: file identifier {data[4:8]!r}, expected "
                f"{self.file_identifier!r}."
            )
        root = flatbuffers.encode.Get(number_types.UOffsetTFlags.packer_type, data, 0)
        return self._read_table(Table(bytearray(data), root), table or self.root_type)

    def _read_table(self, tab: Table, name: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for f in self.tables[name].fields:
            o = tab.Offset(4 + 2 * f.id)
            enum = self.enums.get(f.type)
            if enum is not None and enum.underlying is None:
                value_offset = tab.Offset(4 + 2 * (f.id + 1))
                if not o or not value_offset:
                    continue
                kind = tab.Get(number_types.Uint8Flags, o + tab.Pos)
                member = {v: k for k, v in enum.values.items()}[kind]
                inner = Table(tab.Bytes, tab.Indirect(value_offset + tab.Pos))
                result[f.name] = {member: self._read_table(inner, member)}
                continue
            if not o:
                continue
            if f.is_vector:
                count, start = tab.VectorLen(o), tab.Vector(o)
                result[f.name] = [self._read_element(tab, f, start, i) for i in range(count)]
            elif f.type == "string":
                result[f.name] = tab.String(o + tab.Pos).decode()
            elif f.type in self.tables:
                inner = Table(tab.Bytes, tab.Indirect(o + tab.Pos))
                result[f.name] = self._read_table(inner, f.type)
            else:
                result[f.name] = self._named(f, tab.Get(SCALARS[self._scalar_of(f.type)][0],
                                                       o + tab.Pos))
        return result

    def _read_element(self, tab: Table, f: Field, start: int, index: int) -> Any:
        if f.type == "string":
            return tab.String(start + 4 * index).decode()
        if f.type in self.tables:
            return self._read_table(Table(tab.Bytes, tab.Indirect(start + 4 * index)), f.type)
        flags = SCALARS[self._scalar_of(f.type)][0]
        return self._named(f, tab.Get(flags, start + flags.bytewidth * index))

    # ----------------------------------------------------------------------------------------
    # Versions

    def min_version(self, value: Mapping[str, Any], table: str | None = None) -> str:
        """The newest `Added in` version among the tables, fields, enum values and union members
        that `value` uses (`1.0.0` when none is annotated)."""
        return ".".join(map(str, self._min_version(value, table or self.root_type)))

    def _min_version(self, value: Mapping[str, Any], name: str) -> tuple[int, ...]:
        table = self.tables[name]
        found = [_version(table.added_in)]
        for f in table.fields:
            item = value.get(f.name)
            if item is None:
                continue
            found.append(_version(f.added_in))
            items = item if f.is_vector else [item]
            enum = self.enums.get(f.type)
            for element in items:
                if enum is not None and enum.underlying is None:
                    member, body = self._union_member(f, element)
                    found += [_version(enum.added_in), _version(enum.added[member]),
                              self._min_version(body, member)]
                elif enum is not None:
                    member = self._member_name(enum, element)
                    found += [_version(enum.added_in), _version(enum.added[member])]
                elif f.type in self.tables:
                    found.append(self._min_version(element, f.type))
        return max(found)

    # ----------------------------------------------------------------------------------------
    # Helpers

    def _slot_count(self, table: TableDef) -> int:
        last = table.fields[-1] if table.fields else None
        if last is None:
            return 0
        union = last.type in self.enums and self.enums[last.type].underlying is None
        return last.id + (2 if union else 1)

    def _is_scalar(self, type_name: str) -> bool:
        return type_name in SCALARS or (
            type_name in self.enums and self.enums[type_name].underlying is not None
        )

    def _scalar_of(self, type_name: str) -> str:
        if type_name in SCALARS:
            return type_name
        return self.enums[type_name].underlying  # type: ignore[return-value]

    def _number(self, f: Field, item: Any) -> Any:
        enum = self.enums.get(f.type)
        if enum is not None:
            return enum.values[self._member_name(enum, item)]
        if f.type in ("float", "float32", "double", "float64"):
            return float(item)
        if f.type == "bool":
            return bool(item)
        return int(item)

    def _named(self, f: Field, number: Any) -> Any:
        enum = self.enums.get(f.type)
        if enum is None:
            return number
        names = {v: k for k, v in enum.values.items()}
        return names.get(number, number)

    @staticmethod
    def _member_name(enum: Enum, item: Any) -> str:
        if isinstance(item, str):
            if item not in enum.values:
                raise SchemaError(
                    f"{enum.name} has no member {item!r}; members: {list(enum.values)}."
                )
            return item
        names = {v: k for k, v in enum.values.items()}
        if item not in names:
            raise SchemaError(f"{enum.name} has no value {item!r}; values: {enum.values}.")
        return names[item]

    def _union_member(self, f: Field, item: Any) -> tuple[str, Mapping[str, Any]]:
        enum = self.enums[f.type]
        if not isinstance(item, Mapping) or len(item) != 1:
            raise SchemaError(
                f"Union field {f.name} takes a one-key dict {{member: table}}; members: "
                f"{[m for m in enum.values if m != 'NONE']}."
            )
        ((member, body),) = item.items()
        self._member_name(enum, member)
        return member, body


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def parse(text: str) -> Schema:
    """Parses the text of a `.fbs` schema (see the module docstring for what is supported)."""
    tables: dict[str, TableDef] = {}
    enums: dict[str, Enum] = {}
    root_type = ""
    identifier: bytes | None = None
    version_match = re.search(r"Schema Semantic version:\s*(\d+\.\d+\.\d+)", text)
    pending: list[str] = []
    block: TableDef | Enum | None = None
    next_id = 0
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("//"):
            pending.append(line)
            continue
        if not line:
            continue
        code = line.split("//", 1)[0].strip()
        added_match = _ADDED_IN.search(" ".join(pending))
        added = added_match.group(1) if added_match else BASE_VERSION
        pending = []
        if block is None:
            if match := re.fullmatch(r"table\s+(\w+)\s*\{\s*(\})?", code):
                block = TableDef(match.group(1), added)
                tables[block.name] = block
                next_id = 0
            elif match := re.fullmatch(r"enum\s+(\w+)\s*:\s*(\w+)\s*\{", code):
                block = Enum(match.group(1), match.group(2), added)
                enums[block.name] = block
            elif match := re.fullmatch(r"union\s+(\w+)\s*\{", code):
                block = Enum(match.group(1), None, added, {"NONE": 0}, {"NONE": BASE_VERSION})
                enums[block.name] = block
            elif match := re.fullmatch(r'file_identifier\s+"(\w{4})"\s*;', code):
                identifier = match.group(1).encode()
            elif match := re.fullmatch(r"root_type\s+(\w+)\s*;", code):
                root_type = match.group(1)
            elif re.fullmatch(r'(namespace\s+[\w.]+|file_extension\s+"\w+")\s*;', code):
                pass
            else:
                raise SchemaError(f"Unsupported schema declaration: {code!r}")
            if isinstance(block, TableDef) and code.endswith("}"):
                block = None
            continue
        if code.startswith("}"):
            block = None
            continue
        if isinstance(block, TableDef):
            match = re.fullmatch(
                r"(\w+)\s*:\s*(\[)?\s*(\w+)\s*\]?\s*(?:=\s*([\w.\-]+))?\s*(?:\((.*)\))?\s*;", code
            )
            if not match:
                raise SchemaError(f"Unsupported field in table {block.name}: {code!r}")
            name, vector, type_name, default, attributes = match.groups()
            align = None
            if attributes:
                if "id:" in attributes:
                    raise SchemaError(f"Explicit field ids are not supported: {code!r}")
                if align_match := re.search(r"force_align\s*:\s*(\d+)", attributes):
                    align = int(align_match.group(1))
            block.fields.append(
                Field(name, type_name, bool(vector), next_id, added, default, align)
            )
            # A union field occupies two ids: its `_type` discriminator, then the value.
            next_id += 2 if type_name in enums and enums[type_name].underlying is None else 1
        else:
            for item in filter(None, (part.strip() for part in code.split(","))):
                if match := re.fullmatch(r"(\w+)\s*(?:=\s*(-?\d+))?", item):
                    member, number = match.groups()
                    following = max(block.values.values(), default=-1) + 1
                    block.values[member] = int(number) if number is not None else following
                    block.added[member] = added
                else:
                    raise SchemaError(f"Unsupported member in {block.name}: {item!r}")
    if not root_type:
        raise SchemaError("The schema declares no root_type.")
    return Schema(tables, enums, root_type, identifier,
                  version_match.group(1) if version_match else None)


def load(path: str | Path) -> Schema:
    """Parses a `.fbs` file."""
    return parse(Path(path).read_text())
