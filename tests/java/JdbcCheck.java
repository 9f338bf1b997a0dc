// pgjdbc as Metabase's sync uses it: DatabaseMetaData (tables, columns,
// primary keys, imported keys, indexes, a type lookup), then a query read
// with setFetchSize (Execute with a row limit, PortalSuspended). Prints
// every answer as text lines, so the same program's output against
// streamlake and against PostgreSQL can be compared.
// Usage: java -cp postgresql.jar JdbcCheck.java JDBC_URL USER
import java.sql.*;
import java.util.*;

public class JdbcCheck {
    static void dump(String label, ResultSet rs, String... cols) throws SQLException {
        while (rs.next()) {
            StringBuilder sb = new StringBuilder(label);
            for (String c : cols) {
                sb.append(" | ").append(c).append('=').append(rs.getString(c));
            }
            System.out.println(sb);
        }
        rs.close();
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            DatabaseMetaData md = conn.getMetaData();
            dump("tables", md.getTables(null, "public", "%", new String[] {"TABLE"}),
                 "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE");
            dump("columns", md.getColumns(null, "public", "readings", "%"),
                 "COLUMN_NAME", "DATA_TYPE", "TYPE_NAME", "COLUMN_SIZE", "DECIMAL_DIGITS",
                 "NULLABLE", "ORDINAL_POSITION", "IS_NULLABLE");
            dump("primary keys", md.getPrimaryKeys(null, "public", "readings"),
                 "TABLE_NAME", "COLUMN_NAME", "KEY_SEQ", "PK_NAME");
            dump("imported keys", md.getImportedKeys(null, "public", "readings"),
                 "PKTABLE_NAME", "FKCOLUMN_NAME");
            dump("index info", md.getIndexInfo(null, "public", "readings", false, false),
                 "INDEX_NAME", "NON_UNIQUE", "COLUMN_NAME", "ORDINAL_POSITION");
            try (Statement st = conn.createStatement()) {
                dump("type lookup", st.executeQuery(
                    "SELECT typinput='pg_catalog.array_in'::regproc AS is_array, typtype, typname, pg_type.oid "
                    + "FROM pg_catalog.pg_type LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r "
                    + "from pg_namespace as ns join ( select s.r, (current_schemas(false))[s.r] as nspname "
                    + "from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r "
                    + "using ( nspname ) ) as sp ON sp.nspoid = typnamespace WHERE typname = 'numeric' "
                    + "ORDER BY sp.r, pg_type.oid DESC LIMIT 1"),
                    "typtype", "typname", "oid");
            }
            conn.setAutoCommit(false);
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT id, at, value, price, ratio, label FROM readings ORDER BY id")) {
                ps.setFetchSize(2);
                try (ResultSet rs = ps.executeQuery()) {
                    ResultSetMetaData rmd = rs.getMetaData();
                    for (int i = 1; i <= rmd.getColumnCount(); i++) {
                        System.out.println("result column | " + rmd.getColumnName(i) + " | "
                            + rmd.getColumnTypeName(i) + " | " + rmd.getColumnType(i));
                    }
                    while (rs.next()) {
                        System.out.println("row | " + rs.getInt(1) + " | " + rs.getString(2) + " | "
                            + rs.getBigDecimal(3) + " | " + rs.getBigDecimal(4) + " | "
                            + rs.getString(5) + " | " + rs.getString(6) + " | "
                            + rs.getTimestamp(2).toInstant());
                    }
                }
            }
            conn.commit();
        }
        System.out.println("jdbc checks done");
    }
}
