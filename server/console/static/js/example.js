// A minimal context a handler's own JSON schema accepts, built from that schema: required
// properties only, each at its smallest valid value. Returns null when no value can be
// trusted to pass (a pattern, a format, a combinator): the form then starts empty, with the
// schema beside it, rather than offering a document the server would refuse.

const UNSURE = Symbol("unsure");

function number(schema, integer) {
  let low = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + (integer ? 1 : 0.5) : null);
  if (low === null) low = schema.maximum !== undefined && schema.maximum < 1 ? schema.maximum : 1;
  const value = integer ? Math.ceil(low) : low;
  if (schema.maximum !== undefined && value > schema.maximum) return UNSURE;
  if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) return UNSURE;
  if (schema.multipleOf && value % schema.multipleOf !== 0) return UNSURE;
  return value;
}

function minimal(schema, depth = 0) {
  if (!schema || typeof schema !== "object" || depth > 8) return UNSURE;
  if ("const" in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  if ("default" in schema) return schema.default;
  if (Array.isArray(schema.examples) && schema.examples.length) return schema.examples[0];
  if (schema.anyOf || schema.oneOf || schema.allOf || schema.not || schema.$ref || schema.if) return UNSURE;
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case "object": case undefined: {
      if (type === undefined && !schema.properties) return UNSURE;
      const out = {};
      for (const key of schema.required || []) {
        const value = minimal((schema.properties || {})[key], depth + 1);
        if (value === UNSURE) return UNSURE;
        out[key] = value;
      }
      return out;
    }
    case "array": {
      const count = schema.minItems || 0;
      if (!count) return [];
      const item = minimal(schema.items, depth + 1);
      if (item === UNSURE || (schema.uniqueItems && count > 1)) return UNSURE;
      return Array.from({ length: count }, () => structuredClone(item));
    }
    case "string": {
      if (schema.pattern || schema.format) return UNSURE;
      const length = Math.max(schema.minLength || 0, 1);
      if (schema.maxLength !== undefined && length > schema.maxLength) return "";
      return "x".repeat(length);
    }
    case "integer": return number(schema, true);
    case "number": return number(schema, false);
    case "boolean": return false;
    case "null": return null;
    default: return UNSURE;
  }
}

/** The smallest valid context for `schema` (an object), or null when unsure. */
export function exampleContext(schema) {
  if (!schema || typeof schema !== "object" || !Object.keys(schema).length) return {};
  const value = minimal(schema);
  return value === UNSURE || value === null || typeof value !== "object" || Array.isArray(value) ? null : value;
}
