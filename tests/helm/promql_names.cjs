// Parses PromQL expressions with the Prometheus project's own grammar (@prometheus-io/lezer-promql)
// and prints, for each, whether it parsed and which metric names its selectors name.
// stdin: a JSON array of expressions; stdout: a JSON array of
//   {"expr": ..., "errors": [offsets of syntax errors], "names": [metric names], "nameless": n}
// where nameless counts selectors without a metric name ({__name__=...}), which cannot be checked.
// Usage: NODE_PATH=<dir with node_modules> node promql_names.cjs < exprs.json
'use strict';
const { parser } = require('@prometheus-io/lezer-promql');

const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = input.map((expr) => {
	const tree = parser.parse(expr);
	const errors = [];
	const names = new Set();
	let nameless = 0;
	tree.iterate({
		enter(node) {
			if (node.type.isError)
				errors.push(node.from);
			if (node.name === 'VectorSelector') {
				const id = node.node.getChild('Identifier');
				if (id)
					names.add(expr.slice(id.from, id.to));
				else
					nameless++;
			}
		},
	});
	return { expr, errors, names: [...names].sort(), nameless };
});
process.stdout.write(JSON.stringify(out));
