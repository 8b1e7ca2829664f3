/**
 * A small stand-in for `@std/cli`'s `parseArgs`, mapped by `deno.json` while JSR is out of
 * reach. It implements the subset proctree uses with std's names and semantics: `boolean`,
 * `string`, `collect`, `negatable`, `alias`, `default`, `stopEarly`, `"--"` and `unknown`.
 * Positional arguments stay strings (std turns numeric-looking ones into numbers; callers
 * here use `String(x)`, which is correct for both).
 *
 * @module
 */

/** Options of {@linkcode parseArgs}. */
export interface ParseOptions {
  boolean?: readonly string[];
  string?: readonly string[];
  collect?: readonly string[];
  negatable?: readonly string[];
  alias?: Readonly<Record<string, string | readonly string[]>>;
  default?: Readonly<Record<string, unknown>>;
  stopEarly?: boolean;
  "--"?: boolean;
  /** Called for an unknown option; return false to leave it out. */
  unknown?: (arg: string, key?: string, value?: unknown) => unknown;
}

/** The parsed arguments. */
export interface Args {
  _: (string | number)[];
  "--"?: string[];
  // deno-lint-ignore no-explicit-any
  [key: string]: any;
}

/** Parses command-line arguments like std's `parseArgs`. */
export function parseArgs(args: readonly string[], options: ParseOptions = {}): Args {
  const canonical = new Map<string, string>();
  for (const [name, alias] of Object.entries(options.alias ?? {})) {
    for (const a of typeof alias === "string" ? [alias] : alias) canonical.set(a, name);
    canonical.set(name, name);
  }
  const key = (k: string) => canonical.get(k) ?? k;
  const booleans = new Set((options.boolean ?? []).map(key));
  const strings = new Set((options.string ?? []).map(key));
  const collect = new Set((options.collect ?? []).map(key));
  const negatable = new Set((options.negatable ?? []).map(key));
  const out: Args = { _: [] };
  for (const b of booleans) out[b] = false;
  for (const c of collect) out[c] = [];
  for (const [k, v] of Object.entries(options.default ?? {})) out[key(k)] = v;
  // Every alias carries its flag's value from the start, as std's does.
  for (const [alias, name] of canonical) if (alias !== name && name in out) out[alias] = out[name];

  const known = (k: string) => booleans.has(k) || strings.has(k) || collect.has(k);
  const set = (arg: string, k: string, value: unknown) => {
    if (!known(k) && options.unknown && options.unknown(arg, k, value) === false) return;
    if (collect.has(k)) (out[k] as unknown[]).push(value);
    else out[k] = value;
    for (const [alias, name] of canonical) if (name === k && alias !== k) out[alias] = out[k];
  };

  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      const rest = args.slice(i + 1);
      if (options["--"]) out["--"] = rest;
      else out._.push(...rest);
      break;
    }
    let m: RegExpExecArray | null;
    if ((m = /^--([^=]+)=(.*)$/s.exec(arg))) {
      const k = key(m[1]);
      set(arg, k, booleans.has(k) ? m[2] !== "false" : m[2]);
    } else if ((m = /^--no-(.+)$/.exec(arg)) && negatable.has(key(m[1]))) {
      set(arg, key(m[1]), false);
    } else if ((m = /^--(.+)$/.exec(arg))) {
      const k = key(m[1]);
      if (strings.has(k) || (collect.has(k) && !booleans.has(k))) {
        if (i + 1 < args.length) set(arg, k, args[++i]);
        else set(arg, k, "");
      } else set(arg, k, true);
    } else if (/^-[^-]/.test(arg) && arg.length > 1) {
      const letters = arg.slice(1);
      for (let j = 0; j < letters.length; j++) {
        const k = key(letters[j]);
        if (strings.has(k) || (collect.has(k) && !booleans.has(k))) {
          const rest = letters.slice(j + 1);
          if (rest) set(arg, k, rest);
          else if (i + 1 < args.length) set(arg, k, args[++i]);
          else set(arg, k, "");
          break;
        }
        set(arg, k, true);
      }
    } else {
      if (!options.unknown || options.unknown(arg) !== false) out._.push(arg);
      if (options.stopEarly) {
        const rest = args.slice(i + 1);
        if (options["--"] && rest[0] === "--") out["--"] = rest.slice(1);
        else out._.push(...rest);
        break;
      }
    }
  }
  return out;
}
