      const graphiqlFetcher = GraphiQL.createFetcher({
        url: fetchURL,
        headers: defaultHeaders,
        subscriptionUrl,
      });

      // GraphiQL sends an operation over the websocket only when its own parsed copy of the
      // document shows a subscription by that name; decide from the text as well, so every
      // subscription (named or not, parsed yet or not) goes there and none is POSTed.
      function operationsOf(text) {
        const source = text
          .replace(/"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"/g, '""')
          .replace(/#[^\n\r]*/g, "");
        const tokens = source.match(/[_A-Za-z][_0-9A-Za-z]*|[{}()]/g) || [];
        const operations = [];
        let depth = 0;
        let header = false;
        for (let i = 0; i < tokens.length; i++) {
          const token = tokens[i];
          if (token === "{" || token === "(") {
            if (token === "{" && depth === 0) {
              if (!header) operations.push({ type: "query", name: undefined });
              header = false;
            }
            depth++;
          } else if (token === "}" || token === ")") {
            depth--;
          } else if (depth === 0 && !header) {
            header = true;
            if (token !== "fragment") {
              const next = tokens[i + 1];
              const named = next !== undefined && /^[_A-Za-z]/.test(next);
              operations.push({ type: token, name: named ? next : undefined });
            }
          }
        }
        return operations;
      }

      function isSubscription(query, operationName) {
        const operations = operationsOf(query || "");
        const chosen = operationName
          ? operations.filter((op) => op.name === operationName)
          : operations;
        return chosen.length === 1 && chosen[0].type === "subscription";
      }

      function fetcher(params, options) {
        if (!isSubscription(params.query, params.operationName)) {
          return graphiqlFetcher(params, options);
        }
        const name = params.operationName || undefined;
        const documentAST = {
          kind: "Document",
          definitions: [
            {
              kind: "OperationDefinition",
              operation: "subscription",
              name: name && { kind: "Name", value: name },
              selectionSet: { kind: "SelectionSet", selections: [] },
            },
          ],
        };
        return graphiqlFetcher(params, { ...options, documentAST });
      }
