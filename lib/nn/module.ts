import * as tf from "@tensorflow/tfjs";

/**
 * The base class of every layer and model, a small cousin of PyTorch's `nn.Module`.
 *
 * A module owns named parameters (trainable `tf.Variable`s) and named child modules. Names join with dots,
 * so a GPT's parameters are called exactly what GPT-2's checkpoint calls them (`h.0.attn.c_attn.weight`):
 * loading pretrained weights becomes a copy by name.
 */
export abstract class Module {
  private readonly ownParameters = new Map<string, tf.Variable>();
  private readonly childModules = new Map<string, Module>();
  /** Dropout is active only while training; `train()` and `eval()` switch a module and all its children. */
  training = false;

  /** Registers `value` as a trainable parameter called `name`; the module owns (and disposes) it. */
  protected addParameter(name: string, value: tf.Tensor): tf.Variable {
    if (this.ownParameters.has(name)) throw new Error(`Module: parameter "${name}" is already registered.`);
    const variable = tf.variable(value, true);
    value.dispose();
    this.ownParameters.set(name, variable);
    return variable;
  }

  /** Registers a child module; its parameters appear as `name.<its own names>`. */
  protected addModule<M extends Module>(name: string, module: M): M {
    if (this.childModules.has(name)) throw new Error(`Module: child module "${name}" is already registered.`);
    this.childModules.set(name, module);
    return module;
  }

  /** All parameters with their full dotted names, in registration order (children after own parameters). */
  namedParameters(prefix = ""): Array<[string, tf.Variable]> {
    const named: Array<[string, tf.Variable]> = [];
    for (const [name, variable] of this.ownParameters) named.push([prefix + name, variable]);
    for (const [name, child] of this.childModules) named.push(...child.namedParameters(`${prefix}${name}.`));
    return named;
  }

  parameters(): tf.Variable[] {
    return this.namedParameters().map(([, variable]) => variable);
  }

  /** Number of trainable numbers (weights and biases) in this module and its children. */
  numParameters(): number {
    return this.parameters().reduce((total, variable) => total + variable.size, 0);
  }

  train(on = true): this {
    this.training = on;
    for (const child of this.childModules.values()) child.train(on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter's memory. The module cannot be used afterwards. */
  dispose(): void {
    for (const variable of this.parameters()) variable.dispose();
  }
}
