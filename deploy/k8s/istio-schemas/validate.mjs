// Reads JSON lines (one Istio object each) on stdin and validates each
// against Istio's CRD schema for its apiVersion and kind, as
// @kubernetes-models/istio compiled it from Istio's crd-all.gen.yaml.
// Prints one line per object; exits 1 if any is invalid or has no schema.
import { createInterface } from "node:readline";
import * as istio from "@kubernetes-models/istio";

const models = new Map();
for (const group of Object.values(istio)) {
  for (const version of Object.values(group)) {
    for (const model of Object.values(version)) {
      if (model && model.apiVersion && model.kind) {
        models.set(`${model.apiVersion}/${model.kind}`, model);
      }
    }
  }
}

let failed = 0;
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const object = JSON.parse(line);
  const name = `${object.kind}/${object.metadata?.name} (${object.apiVersion})`;
  const Model = models.get(`${object.apiVersion}/${object.kind}`);
  if (!Model) {
    console.log(`NO SCHEMA ${name}`);
    failed++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`valid ${name}`);
  } catch (error) {
    console.log(`INVALID ${name}: ${error.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
