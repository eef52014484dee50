#!/usr/bin/env python3
"""Generates the C and Swift code for Persona's protobuf schema.

    scripts/protogen.py OUT_DIR

writes, under OUT_DIR (normally the repository root):
  Shared/CPersonaProto/include/persona/v1/*.pb-c.h   protoc-c output (headers)
  Shared/CPersonaProto/src/persona/v1/*.pb-c.c       protoc-c output (sources)
  Shared/CPersonaProto/include/module.modulemap      the C module
  Shared/Wire/Generated/*.pb.swift                   Swift value types + conversion to/from
                                                     the protoc-c structs
  Tests/WireTests/Generated/Samples.swift            an edge-value sample of every message

The Swift side is generated from the same .proto files by the small parser below. It
understands exactly the subset Persona's schema uses (proto3; top-level messages and enums;
scalar, string, bytes, enum and message fields, singular or repeated) and fails loudly on
anything else, so the schema cannot silently drift out of what the codec supports.
`make check-proto` regenerates into a temporary folder and diffs against the tree.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = os.path.join(ROOT, "Shared", "Schema")
PACKAGE = "persona.v1"
C_PREFIX = "Persona__V1__"
C_FN_PREFIX = "persona__v1__"

# Scalar proto type -> (Swift type, default literal)
SCALARS = {
    "double": ("Double", "0"),
    "float": ("Float", "0"),
    "int32": ("Int32", "0"),
    "int64": ("Int64", "0"),
    "uint32": ("UInt32", "0"),
    "uint64": ("UInt64", "0"),
    "sint32": ("Int32", "0"),
    "sint64": ("Int64", "0"),
    "fixed32": ("UInt32", "0"),
    "fixed64": ("UInt64", "0"),
    "sfixed32": ("Int32", "0"),
    "sfixed64": ("Int64", "0"),
    "bool": ("Bool", "false"),
}

# protoc-c appends "_" to field names that are C keywords.
C_KEYWORDS = set("""auto break case char const continue default do double else enum extern float for
goto if inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while""".split())

SWIFT_KEYWORDS = set("""associatedtype class deinit enum extension fileprivate func import init inout
internal let open operator private protocol public rethrows static struct subscript typealias var
break case continue default defer do else fallthrough for guard if in repeat return switch where
while as catch false is nil super self Self throw throws true try Type""".split())


def camel_to_snake(name):
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def lower_camel(snake):
    parts = snake.split("_")
    out = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    return f"`{out}`" if out in SWIFT_KEYWORDS else out


def upper_snake(camel):
    return camel_to_snake(camel).upper()


class Field:
    def __init__(self, label, type_, name, number):
        self.repeated = label == "repeated"
        self.type = type_
        self.name = name
        self.number = number
        self.c_name = name + "_" if name in C_KEYWORDS else name
        self.swift_name = lower_camel(name)


def parse(path):
    text = open(path).read()
    text = re.sub(r"//[^\n]*", "", text)
    messages, enums = [], []
    pos = 0
    for m in re.finditer(r"\b(message|enum)\s+(\w+)\s*\{([^{}]*)\}", text):
        between = text[pos:m.start()]
        pos = m.end()
        for stmt in filter(None, (s.strip() for s in between.split(";"))):
            if not re.match(r'^(syntax|package|import|option)\b', stmt):
                sys.exit(f"{path}: unsupported statement: {stmt!r}")
        kind, name, body = m.groups()
        if kind == "enum":
            values = []
            for stmt in filter(None, (s.strip() for s in body.split(";"))):
                vm = re.fullmatch(r"(\w+)\s*=\s*(-?\d+)", stmt)
                if not vm:
                    sys.exit(f"{path}: enum {name}: unsupported: {stmt!r}")
                values.append((vm.group(1), int(vm.group(2))))
            enums.append((name, values))
        else:
            fields = []
            for stmt in filter(None, (s.strip() for s in body.split(";"))):
                fm = re.fullmatch(r"(repeated\s+)?([\w.]+)\s+(\w+)\s*=\s*(\d+)", stmt)
                if not fm:
                    sys.exit(f"{path}: message {name}: unsupported: {stmt!r}")
                label = "repeated" if fm.group(1) else ""
                fields.append(Field(label, fm.group(2), fm.group(3), int(fm.group(4))))
            messages.append((name, fields))
    rest = text[pos:]
    if rest.strip() and not all(
        re.match(r'^(syntax|package|import|option)\b', s.strip())
        for s in rest.split(";") if s.strip()
    ):
        sys.exit(f"{path}: unsupported trailing text")
    return messages, enums


def swift_enum(name, values):
    prefix = upper_snake(name) + "_"
    cases = []
    for vname, number in values:
        short = vname[len(prefix):] if vname.startswith(prefix) else vname
        cases.append((lower_camel(short.lower()), short.lower(), number))
    lines = [
        f"/// proto enum `{PACKAGE}.{name}`. A struct rather than a Swift enum so that values",
        "/// this build does not know survive a decode/encode round trip unchanged.",
        f"public struct {name}: RawRepresentable, Hashable, Sendable, CustomStringConvertible {{",
        "    public var rawValue: Int32",
        "    public init(rawValue: Int32) { self.rawValue = rawValue }",
    ]
    for swift, _, number in cases:
        lines.append(f"    public static let {swift} = {name}(rawValue: {number})")
    lines.append(f"    public static let allKnown: [{name}] = [{', '.join('.' + s for s, _, _ in cases)}]")
    lines.append("    /// The value's proto name without the enum prefix, lower case (`add_to_cart`).")
    lines.append("    public var name: String? {")
    lines.append("        switch rawValue {")
    for _, proto, number in cases:
        lines.append(f"        case {number}: \"{proto}\"")
    lines.append("        default: nil")
    lines.append("        }")
    lines.append("    }")
    lines.append(f"    public init?(name: String) {{")
    lines.append("        switch name {")
    for swift, proto, _ in cases:
        lines.append(f"        case \"{proto}\": self = .{swift}")
    lines.append("        default: return nil")
    lines.append("        }")
    lines.append("    }")
    lines.append(f"    public var description: String {{ name ?? \"{name}(\\(rawValue))\" }}")
    lines.append("}")
    return "\n".join(lines)


def swift_message(name, fields, enum_names, message_names):
    cname = C_PREFIX + name
    fn = C_FN_PREFIX + camel_to_snake(name)
    decl, fill, read = [], [], []
    for f in fields:
        t = f.type.split(".")[-1]
        c = f"c.pointee.{f.c_name}"
        v = f"m.pointee.{f.swift_name}"
        if t == "bool":
            if f.repeated:
                sys.exit(f"repeated bool unsupported ({name}.{f.name})")
            decl.append(f"    public var {f.swift_name}: Bool = false")
            fill.append(f"        {c} = {v} ? 1 : 0")
            read.append(f"        {v} = {c} != 0")
        elif t in SCALARS:
            st, default = SCALARS[t]
            if f.repeated:
                decl.append(f"    public var {f.swift_name}: [{st}] = []")
                fill.append(f"        (c.pointee.n_{f.c_name}, {c}) = arena.scalars({v})")
                read.append(f"        {v} = readScalars({c}, c.pointee.n_{f.c_name})")
            else:
                decl.append(f"    public var {f.swift_name}: {st} = {default}")
                fill.append(f"        {c} = {v}")
                read.append(f"        {v} = {c}")
        elif t == "string":
            if f.repeated:
                decl.append(f"    public var {f.swift_name}: [String] = []")
                fill.append(f"        (c.pointee.n_{f.c_name}, {c}) = arena.strings({v})")
                read.append(f"        {v} = readStrings({c}, c.pointee.n_{f.c_name})")
            else:
                decl.append(f"    public var {f.swift_name}: String = \"\"")
                fill.append(f"        if !{v}.isEmpty {{ {c} = arena.string({v}) }}")
                read.append(f"        {v} = readString({c})")
        elif t == "bytes":
            if f.repeated:
                sys.exit(f"repeated bytes unsupported ({name}.{f.name})")
            decl.append(f"    public var {f.swift_name}: [UInt8] = []")
            fill.append(f"        {c} = arena.binary({v})")
            read.append(f"        {v} = readBinary({c})")
        elif t in enum_names:
            if f.repeated:
                decl.append(f"    public var {f.swift_name}: [{t}] = []")
                fill.append(f"        (c.pointee.n_{f.c_name}, {c}) = arena.enums({v}.map(\\.rawValue), as: {C_PREFIX}{t}.self)")
                read.append(f"        {v} = readEnums({c}, c.pointee.n_{f.c_name}).map({t}.init(rawValue:))")
            else:
                decl.append(f"    public var {f.swift_name}: {t} = {t}(rawValue: 0)")
                fill.append(f"        {c} = .init(rawValue: .init(truncatingIfNeeded: {v}.rawValue))")
                read.append(f"        {v} = {t}(rawValue: Int32(truncatingIfNeeded: {c}.rawValue))")
        elif t in message_names:
            if f.repeated:
                decl.append(f"    public var {f.swift_name}: [{t}] = []")
                fill.append(f"        (c.pointee.n_{f.c_name}, {c}) = arena.messages({v})")
                read.append(f"        {v} = readMessages({c}, c.pointee.n_{f.c_name}, as: {t}.self)")
            else:
                # Boxed: keeps messages with many sub-messages small and cheap to copy.
                plain = f.swift_name.strip("`")
                decl.append(f"    public var {f.swift_name}: {t}? {{")
                decl.append(f"        get {{ _{plain}?.value }}")
                decl.append(f"        set {{ _{plain} = newValue.map(Boxed.init) }}")
                decl.append("    }")
                decl.append(f"    private var _{plain}: Boxed<{t}>? = nil")
                decl.append(f"    /// `{plain}` where it is stored (read `.value`): no copy of the message and its fields.")
                decl.append(f"    public var {plain}Ref: Boxed<{t}>? {{ _{plain} }}")
                fill.append(f"        if let box = m.pointee._{plain} {{ {c} = arena.message(box) }}")
                read.append(f"        m.pointee._{plain} = {c}.map {{ Boxed({t}(cMessage: $0)) }}")
        else:
            sys.exit(f"unknown type {f.type} in {name}.{f.name}")
    out = [
        f"/// proto message `{PACKAGE}.{name}`.",
        f"public struct {name}: WireMessage {{",
        *decl,
        "    /// Fields this build does not know, kept so a relay re-encodes them unchanged.",
        "    public var unknownFields = UnknownFields()",
        "    public init() {}",
        "}",
        "",
        f"extension {name}: CMessageConvertible {{",
        f"    typealias CStruct = {cname}",
        f"    static func fill(_ m: UnsafePointer<{name}>, _ c: UnsafeMutablePointer<{cname}>, arena: Arena) {{",
        f"        {fn}__init(c)",
        *fill,
        "        arena.storeUnknownFields(m.pointee.unknownFields, in: UnsafeMutableRawPointer(c))",
        "    }",
        f"    init(cMessage c: UnsafePointer<{cname}>) {{",
        "        self.init()",
        "        Self.read(c, into: &self)",
        "    }",
        f"    static func read(_ c: UnsafePointer<{cname}>, into m: UnsafeMutablePointer<{name}>) {{",
        *read,
        "        m.pointee.unknownFields = UnknownFields(cMessage: UnsafeRawPointer(c))",
        "    }",
        f"    static func cUnpack(_ allocator: UnsafeMutablePointer<ProtobufCAllocator>, _ count: Int, _ bytes: UnsafePointer<UInt8>) -> UnsafeMutablePointer<{cname}>? {{",
        f"        {fn}__unpack(allocator, count, bytes)",
        "    }",
        "    public func serializedBytes() -> [UInt8] { packMessage(self) }",
        f"    public static func serializedBytes(each messages: [{name}]) -> [[UInt8]] {{ packMessages(messages) }}",
        "    public init(serializedBytes bytes: UnsafeRawBufferPointer, limits: DecodingLimits) throws {",
        "        self = try unpackMessage(bytes, limits: limits)",
        "    }",
        "}",
    ]
    return "\n".join(out)


EDGE = {
    # type: (variant 0, variant 1)
    "double": ("-1.5e300", "Double.leastNonzeroMagnitude"),
    "float": ("Float.greatestFiniteMagnitude", "-0.25"),
    "int32": ("Int32.min", "Int32.max"),
    "sint32": ("Int32.min", "Int32.max"),
    "sfixed32": ("Int32.min", "Int32.max"),
    "int64": ("Int64.min", "Int64.max"),
    "sint64": ("Int64.min", "Int64.max"),
    "sfixed64": ("Int64.min", "Int64.max"),
    "uint32": ("UInt32.max", "1"),
    "fixed32": ("UInt32.max", "1"),
    "uint64": ("UInt64.max", "1"),
    "fixed64": ("UInt64.max", "1"),
    "bool": ("true", "true"),
    "string": ('"h\\u{e9}llo \\"w\\\\orld\\" \\u{1F600}"', '"x"'),
    "bytes": ("[0, 255, 10, 13]", "[7]"),
}


def sample_value(f, variant, enums, message_names):
    t = f.type.split(".")[-1]
    if t in EDGE:
        v = EDGE[t][variant]
    elif t in enums:
        v = f".init(rawValue: {enums[t][-1][1] if variant == 0 else enums[t][1 % len(enums[t])][1]})"
    elif t in message_names:
        v = f"{t}.sample({1 - variant})"
    else:
        sys.exit(f"no sample for {t}")
    if f.repeated:
        other = sample_value(Field("", f.type, f.name, f.number), 1 - variant, enums, message_names)
        return f"[{v}, {other}]"
    return v


def swift_samples(parsed, enums, message_names):
    out = [
        "// Generated by scripts/protogen.py; do not edit.",
        "// One sample of every message with every field set to an edge value (two variants),",
        "// for round-trip tests against our codec and Google's protoc.",
        "import Wire",
        "",
    ]
    names = []
    for p in sorted(parsed):
        for name, fields in parsed[p][0]:
            names.append(name)
            out.append(f"extension {name} {{")
            out.append(f"    static func sample(_ variant: Int) -> {name} {{")
            if not fields:
                # A message without fields has one sample, its empty value.
                out.append(f"        {name}()")
            else:
                out.append(f"        var m = {name}()")
                out.append("        if variant == 0 {")
                for f in fields:
                    out.append(f"            m.{f.swift_name} = {sample_value(f, 0, enums, message_names)}")
                out.append("        } else {")
                for f in fields:
                    out.append(f"            m.{f.swift_name} = {sample_value(f, 1, enums, message_names)}")
                out.append("        }")
                out.append("        return m")
            out.append("    }")
            out.append("}")
            out.append("")
    out.append("/// Every message of the schema: its proto name and its two edge-value samples.")
    out.append("let allMessageSamples: [(protoName: String, samples: [any WireMessage])] = [")
    for n in names:
        out.append(f'    ("{PACKAGE}.{n}", [{n}.sample(0), {n}.sample(1), {n}()]),')
    out.append("]")
    return "\n".join(out) + "\n"


def generate(out_root):
    protos = sorted(
        os.path.join("persona", "v1", f)
        for f in os.listdir(os.path.join(SCHEMA, "persona", "v1"))
        if f.endswith(".proto")
    )
    parsed = {p: parse(os.path.join(SCHEMA, p)) for p in protos}
    enum_names = {n for ms, es in parsed.values() for n, _ in es}
    message_names = {n for ms, es in parsed.values() for n, _ in ms}

    # 1. protoc-c
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["protoc-c", f"--proto_path={SCHEMA}", f"--c_out={tmp}", *protos], check=True)
        inc = os.path.join(out_root, "Shared", "CPersonaProto", "include", "persona", "v1")
        src = os.path.join(out_root, "Shared", "CPersonaProto", "src", "persona", "v1")
        for d in (inc, src):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        for f in sorted(os.listdir(os.path.join(tmp, "persona", "v1"))):
            dest = inc if f.endswith(".h") else src
            shutil.copy(os.path.join(tmp, "persona", "v1", f), os.path.join(dest, f))
    modulemap = os.path.join(out_root, "Shared", "CPersonaProto", "include", "module.modulemap")
    with open(modulemap, "w") as fh:
        fh.write("// Generated by scripts/protogen.py; do not edit.\nmodule CPersonaProto {\n")
        for p in protos:
            fh.write(f'    header "{p[:-len(".proto")]}.pb-c.h"\n')
        fh.write("    export *\n}\n")

    # 2. Swift
    gen = os.path.join(out_root, "Shared", "Wire", "Generated")
    shutil.rmtree(gen, ignore_errors=True)
    os.makedirs(gen)
    for p in protos:
        messages, enums = parsed[p]
        base = os.path.basename(p)[: -len(".proto")]
        parts = [
            f"// Generated by scripts/protogen.py from Shared/Schema/{p}; do not edit.",
            "internal import CPersonaProto",
            "internal import CProtobufC",
            "",
        ]
        for n, vs in enums:
            parts += [swift_enum(n, vs), ""]
        for n, fs in messages:
            parts += [swift_message(n, fs, enum_names, message_names), ""]
        name = base[:1].upper() + base[1:]
        with open(os.path.join(gen, f"{name}.pb.swift"), "w") as fh:
            fh.write("\n".join(parts).rstrip() + "\n")

    # 3. Test samples
    enums = {n: vs for ms, es in parsed.values() for n, vs in es}
    samples = os.path.join(out_root, "Tests", "WireTests", "Generated")
    os.makedirs(samples, exist_ok=True)
    with open(os.path.join(samples, "Samples.swift"), "w") as fh:
        fh.write(swift_samples(parsed, enums, message_names))

    # 4. The generated Swift in the repository's format (.swift-format), as the rest of the tree.
    swift_files = [os.path.join(gen, f) for f in sorted(os.listdir(gen))] + [os.path.join(samples, "Samples.swift")]
    subprocess.run(
        ["swift", "format", "format", "-i", "--configuration", os.path.join(ROOT, ".swift-format")] + swift_files, check=True)


if __name__ == "__main__":
    generate(sys.argv[1] if len(sys.argv) > 1 else ROOT)
