#!/usr/bin/env bash
# Regenerates stages/src/transcript/pricing.json, the embedded price table, from LiteLLM's model
# price list (model_prices_and_context_window_backup.json, shipped inside the `litellm` package
# on PyPI): every Claude model it prices, keyed by its name without a date suffix, each entry
# naming where its prices came from. Usage: scripts/update-prices.sh [LITELLM_VERSION]
#
# Where LiteLLM lists a model under several providers, Anthropic's own entry wins, then
# Bedrock's base (unprefixed `anthropic.…`) entry, then Vertex's; regional entries (us., eu.,
# with their surcharge) are never used. A rate the source leaves out is derived from the input
# rate by Anthropic's published multipliers (cache write 5 min 1.25×, 1 h 2×, cache read 0.1×)
# and listed in the entry's `derived`.
set -euo pipefail
version=${1:-1.110.2}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --dest "$work" "litellm==$version"
python3 - "$work"/litellm-*.whl "$version" "$root/stages/src/transcript/pricing.json" <<'PY'
import datetime, json, re, sys, zipfile

wheel, version, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    source = json.loads(z.read("litellm/model_prices_and_context_window_backup.json"))

# Anthropic API model ids: claude-FAMILY-N[-N] or the older claude-3[-5|-7]-FAMILY.
NAME = re.compile(r"^(claude-(?:opus|sonnet|haiku|fable|mythos)-(?:\d{1,2}(?:-\d{1,2})?|preview)"
                  r"|claude-3(?:-[57])?-(?:opus|sonnet|haiku))(?:-(\d{8}))?$")
bedrock = lambda key: re.sub(r"^anthropic\.(.*?)-v\d+:\d+$", r"\1", key)
PROVIDERS = {
    "anthropic": (0, lambda key: key),
    "bedrock": (1, bedrock),
    "bedrock_converse": (1, bedrock),
    "vertex_ai-anthropic_models": (2, lambda key: re.sub(r"^vertex_ai/(.*?)(@\d{8})?$", r"\1", key)),
}
PER_MILLION = 1_000_000

def rate(entry, field):
    value = entry.get(field)
    return None if value is None else round(value * PER_MILLION, 6)

chosen = {}
for key, entry in source.items():
    if not isinstance(entry, dict) or entry.get("litellm_provider") not in PROVIDERS:
        continue
    rank, name_of = PROVIDERS[entry["litellm_provider"]]
    match = NAME.match(name_of(key))
    if not match or entry.get("input_cost_per_token") is None:
        continue
    model, date = match.group(1), match.group(2) or ""
    # A better provider wins; within one, the newest release of the model.
    if model in chosen and (-chosen[model][0], chosen[model][1]) >= (-rank, date):
        continue
    chosen[model] = (rank, date, key, entry)

today = datetime.date.today().isoformat()
models = {}
for model, (_, _, key, entry) in sorted(chosen.items()):
    derived = []
    def with_default(field, multiplier, label, base):
        value = rate(entry, field)
        if value is None and base is not None:
            derived.append(label)
            return round(base * multiplier, 6)
        return value
    inp = rate(entry, "input_cost_per_token")
    price = {
        "input": inp,
        "output": rate(entry, "output_cost_per_token"),
        "cache_write_5m": with_default("cache_creation_input_token_cost", 1.25, "cache_write_5m", inp),
        "cache_write_1h": with_default("cache_creation_input_token_cost_above_1hr", 2.0, "cache_write_1h", inp),
        "cache_read": with_default("cache_read_input_token_cost", 0.1, "cache_read", inp),
    }
    long_input = rate(entry, "input_cost_per_token_above_200k_tokens")
    if long_input is not None:
        price["above_200k"] = {
            "input": long_input,
            "output": rate(entry, "output_cost_per_token_above_200k_tokens") or price["output"],
            "cache_write_5m": rate(entry, "cache_creation_input_token_cost_above_200k_tokens") or round(long_input * 1.25, 6),
            "cache_write_1h": rate(entry, "cache_creation_input_token_cost_above_1hr_above_200k_tokens") or round(long_input * 2, 6),
            "cache_read": rate(entry, "cache_read_input_token_cost_above_200k_tokens") or round(long_input * 0.1, 6),
        }
    price["source"] = f"litellm {version}: {key} ({entry['litellm_provider']})"
    price["as_of"] = today
    if derived:
        price["derived"] = derived
    models[model] = price

models["<synthetic>"] = {"input": 0, "output": 0, "cache_write_5m": 0, "cache_write_1h": 0,
                         "cache_read": 0, "as_of": today,
                         "source": "Claude Code's own placeholder for messages it wrote itself"}
table = {
    "as_of": today,
    "source": f"LiteLLM {version}, litellm/model_prices_and_context_window_backup.json (PyPI); regenerate with scripts/update-prices.sh",
    "unit": "USD per million tokens",
    "note": "A request whose prompt (input + cache write + cache read) exceeds 200k tokens is charged entirely at the model's above_200k rates, when it has them. Keys are model names without their date suffix. A model of a known family missing here is priced at the family's newest rates and marked as estimated.",
    "models": models,
}
with open(out, "w") as f:
    json.dump(table, f, indent=1)
    f.write("\n")
print(f"{out}: {len(models)} models from LiteLLM {version}")
PY
