package dcm_spark;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.ExprId;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.NamedExpression;
import org.apache.spark.sql.catalyst.expressions.OuterReference;
import org.apache.spark.sql.catalyst.expressions.SubqueryExpression;
import org.apache.spark.sql.catalyst.plans.logical.Aggregate;
import org.apache.spark.sql.catalyst.plans.logical.Filter;
import org.apache.spark.sql.catalyst.plans.logical.Generate;
import org.apache.spark.sql.catalyst.plans.logical.GlobalLimit;
import org.apache.spark.sql.catalyst.plans.logical.Join;
import org.apache.spark.sql.catalyst.plans.logical.LocalLimit;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.Project;
import org.apache.spark.sql.catalyst.plans.logical.Sort;
import org.apache.spark.sql.catalyst.plans.logical.SubqueryAlias;
import org.apache.spark.sql.catalyst.plans.logical.View;
import org.apache.spark.sql.catalyst.plans.logical.Window;
import org.apache.spark.sql.catalyst.rules.Rule;
import scala.Function1;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.BoxedUnit;

/**
 * Column pruning of the `dicom_all` views during analysis (`spark.sql.extensions`).
 *
 * <p>The views are one projection of about 4,400 columns (dcm_spark/idc/view.py). Spark's
 * analyser and optimiser rebuild and hash every output column of it on every query that
 * reads them, ~0.1 s a query, before the optimiser's own column pruning drops the columns
 * the query does not read. Once a query is resolved, this rule keeps of each such view only
 * the columns something above it reads (by expression id), so the rules after it see a
 * narrow plan. A view whose every column may be read (the query's output, a set operation
 * or anything else that reads its input whole) is left as it is.
 */
public final class IdcViewPruning implements Function1<SparkSessionExtensions, BoxedUnit> {

  /** The views pruned: `dcm_spark.catalog.IDC_VIEWS`. */
  static final Set<String> VIEWS = Set.of("dicom_all", "dicom_metadata");

  @Override
  public BoxedUnit apply(SparkSessionExtensions extensions) {
    extensions.injectResolutionRule(session -> new Prune());
    return BoxedUnit.UNIT;
  }

  static final class Prune extends Rule<LogicalPlan> {
    @Override
    public LogicalPlan apply(LogicalPlan plan) {
      if (!plan.resolved() || !hasView(plan)) {
        return plan;
      }
      Set<ExprId> read = new HashSet<>();
      for (Attribute a : list(plan.output())) {
        read.add(a.exprId());
      }
      collect(plan, read);
      return prune(plan, read, true);
    }
  }

  private static <T> List<T> list(scala.collection.Seq<T> seq) {
    return CollectionConverters.asJava(seq);
  }

  private static <T> scala.collection.immutable.Seq<T> seq(List<T> list) {
    return CollectionConverters.asScala(list).toSeq();
  }

  /** The projection an IDC view shows (pruned or not), or null. */
  private static Project projection(LogicalPlan plan) {
    if (plan instanceof View view
        && view.isTempView()
        && VIEWS.contains(view.desc().identifier().table())
        && view.child() instanceof Project project) {
      return project;
    }
    return null;
  }

  private static boolean hasView(LogicalPlan plan) {
    if (projection(plan) != null) {
      return true;
    }
    for (LogicalPlan child : list(plan.children())) {
      if (hasView(child)) {
        return true;
      }
    }
    return false;
  }

  /** Every attribute any expression of the plan names, in subqueries too, except in the
   *  views themselves (their definitions name only the table's columns). */
  private static void collect(LogicalPlan plan, Set<ExprId> read) {
    if (projection(plan) != null) {
      return;
    }
    for (Expression e : list(plan.expressions())) {
      collect(e, read);
    }
    for (LogicalPlan child : list(plan.children())) {
      collect(child, read);
    }
  }

  private static void collect(Expression e, Set<ExprId> read) {
    if (e instanceof Attribute a) {
      read.add(a.exprId());
    } else if (e instanceof OuterReference outer) {
      read.add(outer.e().exprId());
    } else if (e instanceof SubqueryExpression subquery) {
      collect(subquery.plan(), read);
    }
    for (Expression child : list(e.children())) {
      collect(child, read);
    }
  }

  /** Nodes whose output is their input's, or holds it, column by column: what they read
   *  of it is named in their expressions or read by the nodes above them. */
  private static boolean passesColumns(LogicalPlan plan) {
    return plan instanceof Filter
        || plan instanceof Sort
        || plan instanceof GlobalLimit
        || plan instanceof LocalLimit
        || plan instanceof SubqueryAlias
        || plan instanceof View
        || plan instanceof Join
        || plan instanceof Window
        || plan instanceof Generate;
  }

  /** {@code prunable}: nothing above reads this plan's input whole. */
  private static LogicalPlan prune(LogicalPlan plan, Set<ExprId> read, boolean prunable) {
    Project own = projection(plan);
    if (own != null) {
      if (!prunable) {
        return plan;
      }
      List<NamedExpression> kept = new ArrayList<>();
      for (NamedExpression column : list(own.projectList())) {
        if (read.contains(column.exprId())) {
          kept.add(column);
        }
      }
      if (kept.size() == own.projectList().size()) {
        return plan;
      }
      LogicalPlan narrow = new Project(seq(kept), own.child());
      return plan.withNewChildren(seq(List.of(narrow)));
    }
    boolean below = plan instanceof Project || plan instanceof Aggregate
        || (prunable && passesColumns(plan));
    List<LogicalPlan> children = list(plan.children());
    List<LogicalPlan> pruned = new ArrayList<>(children.size());
    boolean changed = false;
    for (LogicalPlan child : children) {
      LogicalPlan after = prune(child, read, below);
      changed |= after != child;
      pruned.add(after);
    }
    return changed ? plan.withNewChildren(seq(pruned)) : plan;
  }
}
