// Run by tests/infra/test_operations.py (not by pytest): Microsoft's KQL parser and binder
// (Kusto.Language, npm @kusto/language-service-next, from `npm ci` of package.json) checks each
// query against a database holding only the tables and columns it is given, and prints every
// diagnostic it reports: a syntax error, an unknown table, column or function.
//
//   node kql_check.js < {"tables": {"AppTraces": "(TimeGenerated:datetime, ...)", ...},
//                        "queries": {"name": "AppTraces | ...", ...}}
//   stdout: {"name": ["Error KS204 The name 'X' does not refer to any known table ... @0"], ...}
'use strict';

const path = require('path');
const root = path.resolve(__dirname, '..', '..', 'node_modules', '@kusto', 'language-service-next');
global.window = global; // the Bridge.NET runtime looks for a global object by that name
require(path.join(root, 'bridge.min.js'));
require(path.join(root, 'Kusto.Language.Bridge.min.js'));

const { Symbols, GlobalState, KustoCode } = Kusto.Language;

const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const tables = Object.entries(input.tables).map(([name, schema]) => new Symbols.TableSymbol.$ctor7(name, schema, null));
const globals = GlobalState.Default.WithDatabase(new Symbols.DatabaseSymbol.ctor('workspace', tables));

const report = {};
for (const [name, query] of Object.entries(input.queries)) {
  const diagnostics = KustoCode.ParseAndAnalyze(query, globals).GetDiagnostics();
  report[name] = [];
  for (let i = 0; i < diagnostics.Count; i++) {
    const d = diagnostics.getItem(i);
    report[name].push(`${d.Severity} ${d.Code} ${d.Message} @${d.Start}`);
  }
}
process.stdout.write(JSON.stringify(report));
