/**
 * Whether an adapter is applied to the model it was trained on. Shapes are checked when the
 * adapter loads; two models of one architecture and size (Qwen2-0.5B and Qwen2-0.5B-Instruct)
 * pass that check, so the name PEFT records (`base_model_name_or_path`) is compared too, by the
 * model's own name: a Hub id, a local folder and a Hub cache snapshot of one model all agree.
 */

/** `Qwen/Qwen2-0.5B-Instruct`, `/models/Qwen2-0.5B-Instruct/`, `…/models--Qwen--Qwen2-0.5B-Instruct/snapshots/<hash>` → `qwen2-0.5b-instruct`. */
export function modelName(reference: string): string {
  const cached = /models--[^/\\]+--([^/\\]+)[/\\]snapshots/.exec(reference);
  if (cached) return cached[1]!.toLowerCase();
  const parts = reference.split(/[/\\]+/).filter((part) => part !== '' && part !== '.');
  return (parts.at(-1) ?? reference).toLowerCase();
}

/**
 * A warning when the adapter records another base model than any of the names the model is
 * known by (as given on the command line, resolved folder), else null.
 */
export function baseModelMismatch(
  adapterDir: string,
  recordedBase: string | undefined,
  modelNames: readonly string[],
): string | null {
  if (!recordedBase) return null;
  const wanted = modelName(recordedBase);
  if (modelNames.some((name) => modelName(name) === wanted)) return null;
  return (
    `the adapter ${adapterDir} was trained on ${recordedBase} (base_model_name_or_path), ` +
    `but it is applied to ${modelNames[0]}: the shapes match, the answers may not`
  );
}
